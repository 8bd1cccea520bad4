/**
 * `puzzlefs build`: a directory → a PuzzleFS image in an OCI layout (spec
 * §3.8 assembly; deltas §3.9).
 *
 *   1. walk the tree (walk.ts, §3.1–3.2), delta: against the base's layers;
 *   2. stream the regular files' bytes (stream.ts) straight into slabs, cut
 *      them with FastCDC in place (§3.3, fastcdc.ts SlabCdc), store every
 *      chunk with put_blob (§3.5, in parallel: chunk-pool.ts) and map chunks
 *      onto files (§3.4), all in chunk order. Steps 1 and 2 overlap: the
 *      walk goes on a directory at a time as the stream needs more files;
 *   3. rootfs = {metadatas: [new] (+ base layers), fsVerityData sorted and
 *      unique (∪ base's), manifestVersion 3}, encoded byte-exactly (§2.5),
 *      stored raw as layers[0] with its fs-verity annotation;
 *   4. manifest (canonical JSON, chunk descriptors in chunk order,
 *      duplicates included) as a blob, then index.json by the tag write rule
 *      (§1.3), replaced atomically as the very last step.
 *
 * A failure anywhere before step 4's rename leaves index.json as it was;
 * blobs already written stay (they are content-addressed, so harmless).
 * File data is streamed: memory holds the metadata plus a bounded window of
 * chunks in flight, never the tree's contents.
 */
import { lstatSync } from "node:fs";
import { availableParallelism } from "node:os";
import { PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { canonicalJsonBytes } from "../../oci/json.ts";
import { OciLayout } from "../../oci/layout.ts";
import { Annotation, EMPTY_CONFIG_DESCRIPTOR, MediaType, tagOf, type Descriptor, type ImageManifest } from "../../oci/manifest.ts";
import { checkTag } from "../../oci/ref.ts";
import { encodeRootfs } from "../format/encode.ts";
import { MANIFEST_VERSION, type InodeVector, type VerityData } from "../format/types.ts";
import { fsVerityHex } from "../verity.ts";
import { openBase, sameLayer, type BaseImage } from "./base.ts";
import { ChunkMapper } from "./chunkmap.ts";
import { ChunkPool, SLAB_BYTES } from "./chunk-pool.ts";
import { SlabCdc, type Slab } from "./fastcdc.ts";
import { Compression, type StoredBlob } from "./put-blob.ts";
import { StreamReader } from "./stream.ts";
import { Walker, type WalkCounts } from "./walk.ts";

export interface BuildOptions {
  /** zstd seekable chunks (`-c`). */
  compression?: boolean;
  /** Delta build over this tag of the same layout (`-b`). */
  baseTag?: string;
  /** Worker threads for put_blob; default: one per core (at most 8), or 0 (inline) for small trees. */
  workers?: number;
  /** Called as the build goes (after the walk, after each read and stored chunk). */
  onProgress?: (p: BuildProgress) => void;
}

export interface BuildProgress {
  phase: "data" | "metadata";
  /** Stream bytes read from the tree so far. */
  bytesRead: number;
  /** Stream bytes whose chunks are stored. */
  bytesDone: number;
  /** Σ regular file sizes (the stream length); while `walking`, of the files found so far. */
  bytesTotal: number;
  /** The walk is still going (it runs a directory per read, ahead of the stream): bytesTotal may grow. */
  walking: boolean;
  chunks: number;
}

export interface BuildStats extends WalkCounts {
  /** Chunks cut (= chunk descriptors in the manifest). */
  chunks: number;
  uniqueChunks: number;
  /** Σ lengths of the distinct chunks (uncompressed). */
  uniqueBytes: number;
  /** Σ stored sizes of the distinct chunk blobs. */
  storedBytes: number;
  /** Chunk blobs (and their bytes) this build wrote; the rest already existed. */
  newBlobs: number;
  newBytes: number;
  rootfsBytes: number;
  metadataLayers: number;
  workers: number;
}

export interface BuildResult {
  dir: string;
  tag: string;
  /** sha256 (hex) of the manifest blob. */
  manifestHex: string;
  /** fs-verity digest (hex) of the manifest: what upstream prints and `--digest` pins. */
  manifestVerity: string;
  rootfsHex: string;
  /** The manifest digest the tag pointed at before, when it existed. */
  replaced: string | null;
  stats: BuildStats;
}

/** Below this many stream bytes, starting worker threads costs more than it saves. */
const PARALLEL_MIN_BYTES = 8 << 20;
/** Beyond this, one thread reading and cutting the stream cannot keep more workers busy. */
const MAX_DEFAULT_WORKERS = 8;
/**
 * Chunk bytes in flight per worker: a couple of slabs each (chunk-pool.ts),
 * so no worker waits for the next one; bounds memory.
 */
const IN_FLIGHT_BYTES_PER_WORKER = 2 * SLAB_BYTES;
/** Bytes per read(2): progress moves at least this often. */
const READ_SIZE = 1 << 20;

function checkRootfs(rootfs: string | Buffer): void {
  let link: boolean;
  try {
    link = lstatSync(rootfs).isSymbolicLink();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw PfsError.usage(`rootfs directory ${rootfs.toString()} does not exist`, "give the directory to build the image from");
    }
    throw PfsError.io(`rootfs directory ${rootfs.toString()}`, e);
  }
  // The root's own metadata becomes inode 1, so a link to a directory would be ambiguous.
  if (link) throw PfsError.usage(`rootfs ${rootfs.toString()} is a symbolic link`, `give the directory itself, e.g. $(realpath ${rootfs.toString()})`);
}

export async function build(rootfs: string | Buffer, dir: string, tag: string, opts: BuildOptions = {}): Promise<BuildResult> {
  checkTag(tag);
  checkRootfs(rootfs);
  const compression = opts.compression ? Compression.ZSTD : Compression.NOOP;
  // The base is checked before anything is created or written.
  let layout: OciLayout | null = null;
  let base: BaseImage | null = null;
  if (opts.baseTag !== undefined) {
    checkTag(opts.baseTag);
    layout = await OciLayout.open(dir);
    base = await openBase(layout, opts.baseTag);
  }
  // The walk goes on while the files it has found are read and chunked
  // (StreamReader asks for more), so the workers do not wait for the whole
  // tree to be listed. Enough of it is walked first to choose the number of
  // workers: the whole tree if it is small.
  const walker = new Walker(rootfs, base?.lookup);
  let walking = true;
  const walkOn = () => (walking &&= walker.step());
  while (walker.counts.bytes < PARALLEL_MIN_BYTES && walkOn());
  layout ??= await OciLayout.init(dir);
  const before = (await layout.readIndex(true)).manifests.find((d) => tagOf(d) === tag);
  await layout.putEmptyConfig();

  const workers = opts.workers ?? (walker.counts.bytes >= PARALLEL_MIN_BYTES ? Math.min(availableParallelism(), MAX_DEFAULT_WORKERS) : 0);
  const chunkType = compression === Compression.ZSTD ? MediaType.FILEDATA_ZSTD : MediaType.FILEDATA;
  const layers: Descriptor[] = [];
  const verity = new Map<string, Uint8Array>();
  const stats: Omit<BuildStats, keyof WalkCounts> = {
    chunks: 0,
    uniqueChunks: 0,
    uniqueBytes: 0,
    storedBytes: 0,
    newBlobs: 0,
    newBytes: 0,
    rootfsBytes: 0,
    metadataLayers: 0,
    workers,
  };
  const progress: BuildProgress = { phase: "data", bytesRead: 0, bytesDone: 0, bytesTotal: walker.counts.bytes, walking, chunks: 0 };
  const report = () => opts.onProgress?.({ ...progress, bytesTotal: walker.counts.bytes, walking });
  report();

  const mapper = new ChunkMapper(walker.stream);
  const seen = new Set<string>();
  const take = (length: number, r: StoredBlob) => {
    mapper.add(length, new Uint8Array(Buffer.from(r.hex, "hex")), r.compressed);
    layers.push({ mediaType: chunkType, digest: `sha256:${r.hex}`, size: r.size });
    verity.set(r.hex, r.verity);
    stats.chunks++;
    if (!seen.has(r.hex)) {
      seen.add(r.hex);
      stats.uniqueChunks++;
      stats.uniqueBytes += length;
      stats.storedBytes += r.size;
      if (!r.existed) {
        stats.newBlobs++;
        stats.newBytes += r.size;
      }
    }
    progress.bytesDone += length;
    progress.chunks++;
    report();
  };

  const pool = new ChunkPool({ ociDir: dir, compression }, workers);
  try {
    const inFlight: Array<{ length: number; result: Promise<StoredBlob> }> = [];
    let inFlightBytes = 0;
    const limit = Math.max(1, workers) * IN_FLIGHT_BYTES_PER_WORKER;
    /** Take results, oldest first, until at most `upTo` bytes are in flight (0: all of them). */
    const drain = async (upTo: number) => {
      while (inFlight.length > 0 && (upTo === 0 || inFlightBytes > upTo)) {
        const j = inFlight.shift()!;
        inFlightBytes -= j.length;
        take(j.length, await j.result);
      }
    };
    const submit = (slab: Slab) => {
      const results = pool.putSlab(slab);
      for (let i = 0; i < results.length; i++) {
        const result = results[i]!;
        // Handled when its turn comes; until then a rejection must not count as unhandled.
        result.catch(() => {});
        const length = slab.chunks[i]!.length;
        inFlight.push({ length, result });
        inFlightBytes += length;
      }
    };
    const cdc = new SlabCdc(() => pool.acquireSlab());
    const reader = new StreamReader(walker.stream, walkOn);
    try {
      for (;;) {
        // A directory per read keeps the walk well ahead of the stream (a step lists a
        // whole directory, a read takes at most one file), so the total is soon final.
        walkOn();
        const dest = cdc.writable();
        const n = reader.read(dest.length > READ_SIZE ? dest.subarray(0, READ_SIZE) : dest);
        if (n === 0) break;
        progress.bytesRead += n;
        const full = cdc.commit(n);
        report();
        if (full) {
          submit(full);
          await drain(limit);
        }
      }
    } finally {
      reader.close();
    }
    submit(cdc.finish());
    await drain(0);
  } finally {
    await pool.close();
  }
  const tree = walker.finish();
  if (!mapper.complete) throw PfsError.internal("the data stream ended before every file was mapped");

  progress.phase = "metadata";
  report();
  const top: InodeVector = { inodes: tree.inodes };
  let metadatas: InodeVector[] = [top];
  const allVerity = new Map<string, Uint8Array>();
  if (base) {
    // Upstream: the new layer is not inserted when an identical one is already there.
    metadatas = base.rootfs.metadatas.some((l) => sameLayer(l.inodes, top.inodes)) ? base.rootfs.metadatas : [top, ...base.rootfs.metadatas];
    for (const v of base.rootfs.fsVerityData) allVerity.set(Buffer.from(v.digest).toString("hex"), v.verity);
  }
  for (const [hex, v] of verity) allVerity.set(hex, v);
  const fsVerityData: VerityData[] = [...allVerity.keys()].sort().map((hex) => ({ digest: new Uint8Array(Buffer.from(hex, "hex")), verity: allVerity.get(hex)! }));
  const rootfsBytes = encodeRootfs({ metadatas, fsVerityData, manifestVersion: MANIFEST_VERSION });
  const root = await layout.blobs.put(rootfsBytes);
  stats.rootfsBytes = rootfsBytes.length;
  stats.metadataLayers = metadatas.length;

  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: EMPTY_CONFIG_DESCRIPTOR,
    layers: [
      {
        mediaType: MediaType.ROOTFS,
        digest: `sha256:${root.hex}`,
        size: rootfsBytes.length,
        annotations: { [Annotation.VERITY_ROOT_HASH]: fsVerityHex(rootfsBytes) },
      },
      ...layers,
    ],
  };
  const written = await layout.putManifest(tag, manifest);
  const manifestVerity = fsVerityHex(canonicalJsonBytes(manifest));
  log.pfs("built %s:%s manifest %s (%d chunks, %d new blobs)", dir, tag, written.hex, stats.chunks, stats.newBlobs);
  return {
    dir,
    tag,
    manifestHex: written.hex,
    manifestVerity,
    rootfsHex: root.hex,
    replaced: before ? before.digest : null,
    stats: { ...tree.counts, ...stats },
  };
}
