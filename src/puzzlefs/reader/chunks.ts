/**
 * Chunk blobs for file reads: loaded on first use, verified before any byte
 * is used (sha256 always; fs-verity too when the image was opened with a
 * pinned digest, spec §5), kept in an LRU with a byte cap that all reads of
 * an image share. Concurrent requests for one blob share one load; a failed
 * load is not remembered, so a restored blob reads fine on the next request.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import type { BlobSource } from "../../oci/source.ts";
import { SeekableReader } from "../compression/seekable.ts";
import { fsVerityHex } from "../verity.ts";

export const DEFAULT_CACHE_BYTES = 32 << 20;
/** Upstream chunks are ≤ 256 KiB; anything much bigger is not a chunk. */
export const DEFAULT_MAX_CHUNK_BLOB = 64 << 20;

export interface LoadedChunk {
  readonly hex: string;
  readonly compressed: boolean;
  /** Uncompressed size. */
  readonly size: number;
  /** Bytes held in memory (the stored blob). */
  readonly cost: number;
  /** Uncompressed bytes [offset, offset+length); FORMAT error outside [0, size]. */
  read(offset: number, length: number): Uint8Array;
  /** The same bytes, [offset, offset + dest.length), written into `dest`. */
  readInto(offset: number, dest: Uint8Array): void;
}

export interface ChunkCacheOptions {
  maxBytes?: number;
  maxBlobBytes?: number;
  /** Stored sizes from the manifest (hex → bytes): a file of another size is refused before hashing. */
  blobSizes?: ReadonlyMap<string, number>;
  /** hex digest → expected fs-verity hex, when a manifest digest was pinned. */
  verity?: ReadonlyMap<string, string> | null;
}

export interface ChunkCacheStats {
  hits: number;
  loads: number;
  evictions: number;
  /** Loads that waited for another request's load of the same blob. */
  shared: number;
  bytes: number;
  /** zstd frames decompressed by reads (work count: reads decode only the frames they touch). */
  framesDecoded: number;
}

export class ChunkCache {
  readonly stats: ChunkCacheStats = { hits: 0, loads: 0, evictions: 0, shared: 0, bytes: 0, framesDecoded: 0 };
  readonly maxBytes: number;
  private readonly lru = new Map<string, LoadedChunk>();
  private readonly inflight = new Map<string, Promise<LoadedChunk>>();

  constructor(
    private readonly blobs: BlobSource,
    private readonly opts: ChunkCacheOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_CACHE_BYTES;
  }

  /** The blob if it is cached (a hit, moved to the LRU's young end), without waiting: the reader's synchronous fast path. */
  cached(hex: string, compressed: boolean): LoadedChunk | undefined {
    const key = compressed ? `z${hex}` : hex;
    const hit = this.lru.get(key);
    if (hit) {
      this.stats.hits++;
      this.lru.delete(key);
      this.lru.set(key, hit);
    }
    return hit;
  }

  async get(hex: string, compressed: boolean): Promise<LoadedChunk> {
    const hit = this.cached(hex, compressed);
    if (hit) return hit;
    const key = compressed ? `z${hex}` : hex;
    const pending = this.inflight.get(key);
    if (pending) {
      this.stats.shared++;
      return pending;
    }
    const p = this.load(hex, compressed).then(
      (c) => {
        this.inflight.delete(key);
        this.insert(key, c);
        return c;
      },
      (e: unknown) => {
        this.inflight.delete(key);
        throw e;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  private insert(key: string, c: LoadedChunk): void {
    this.lru.set(key, c);
    this.stats.bytes += c.cost;
    for (const [k, old] of this.lru) {
      if (this.stats.bytes <= this.maxBytes) break;
      this.lru.delete(k);
      this.stats.bytes -= old.cost;
      this.stats.evictions++;
    }
  }

  private async load(hex: string, compressed: boolean): Promise<LoadedChunk> {
    this.stats.loads++;
    const what = `chunk blob sha256:${hex}`;
    const blob = await this.blobs.open(hex, { what, expectedSize: this.opts.blobSizes?.get(hex), maxSize: this.opts.maxBlobBytes ?? DEFAULT_MAX_CHUNK_BLOB });
    const verity = this.opts.verity;
    if (verity) {
      const want = verity.get(hex);
      if (want === undefined) {
        throw new PfsError(ErrorCode.DIGEST, `${what}: missing verity data (the rootfs fsVerityData has no entry for it)`, { data: { what } });
      }
      const got = fsVerityHex(blob.bytes);
      if (got !== want) {
        throw new PfsError(ErrorCode.DIGEST, `${what}: fs-verity mismatch: expected ${want}, got ${got}`, { data: { what, expected: want, got } });
      }
    }
    log.pfs("loaded %s (%d bytes, %s)", hex, blob.size, compressed ? "zstd" : "raw");
    if (!compressed) {
      return { hex, compressed, size: blob.size, cost: blob.size, read: (o, l) => blob.read(o, l), readInto: (o, dest) => dest.set(blob.read(o, dest.length)) };
    }
    const z = new SeekableReader(blob.bytes, what);
    const counted = <T>(f: () => T): T => {
      const before = z.framesDecoded;
      try {
        return f();
      } finally {
        this.stats.framesDecoded += z.framesDecoded - before;
      }
    };
    return {
      hex,
      compressed,
      size: z.size,
      cost: blob.size + z.table.frameCount * 16,
      read: (o, l) => counted(() => z.read(o, l)),
      readInto: (o, dest) => counted(() => z.readInto(o, dest)),
    };
  }

  /** Number of blobs held (for tests and `info`). */
  get size(): number {
    return this.lru.size;
  }
}
