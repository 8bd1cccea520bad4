/**
 * An image in a registry as an ImageSource (../source.ts):
 *
 *  - at open, the tag is resolved to a manifest digest once and pinned (a
 *    tag that moves later does not change what this source serves); the
 *    manifest and every blob come by that digest;
 *  - blobs are read through the local DiskCache, fetched on a miss, verified
 *    by the client before anything keeps or returns them, then cached;
 *  - concurrent requests for one blob share one fetch (a foreground request
 *    promotes a prefetch of the same blob to the high lane);
 *  - `prefetch()` fills the disk cache at low priority and keeps nothing in
 *    memory.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { DEFAULT_MAX_BLOB, verifiedBlob, type BlobReadOptions, type VerifiedBlob } from "../blobs.ts";
import { sha256Hex } from "../digest.ts";
import { parseJson } from "../json.ts";
import type { ResolvedManifest } from "../layout.ts";
import { MediaType, parseManifest } from "../manifest.ts";
import type { BlobSource, ImageSource } from "../source.ts";
import type { DiskCache } from "./cache.ts";
import { MAX_MANIFEST_BYTES, RegistryClient, type RegistryClientOptions } from "./client.ts";
import { laneOf, type Lane, type Priority } from "./limiter.ts";
import { formatRemoteRef, type RemoteRef } from "./ref.ts";

export interface RemoteBlobStats {
  /** Blobs fetched from the registry, and their bytes. */
  fetches: number;
  fetchedBytes: number;
  /** Requests answered from the disk cache. */
  cacheHits: number;
  /** Requests that joined a fetch already under way. */
  shared: number;
  prefetched: number;
}

export class RemoteBlobSource implements BlobSource {
  readonly stats: RemoteBlobStats = { fetches: 0, fetchedBytes: 0, cacheHits: 0, shared: 0, prefetched: 0 };
  private readonly inflight = new Map<string, { lane: Lane; p: Promise<Uint8Array> }>();

  constructor(
    readonly client: RegistryClient,
    readonly cache: DiskCache | null,
  ) {}

  get(hex: string, opts: BlobReadOptions = {}): Promise<Uint8Array> {
    return this.load(hex, opts, "high");
  }

  async open(hex: string, opts: BlobReadOptions = {}): Promise<VerifiedBlob> {
    return verifiedBlob(hex, await this.get(hex, opts), opts.what ?? `blob sha256:${hex}`);
  }

  /** Fetch into the disk cache at low priority (nothing when cached or without a cache). */
  async prefetch(hex: string, opts: BlobReadOptions = {}): Promise<void> {
    if (!this.cache || this.inflight.has(hex) || (await this.cache.has(hex))) return;
    await this.load(hex, opts, "low");
    this.stats.prefetched++;
  }

  private load(hex: string, opts: BlobReadOptions, priority: Priority): Promise<Uint8Array> {
    const running = this.inflight.get(hex);
    if (running) {
      if (laneOf(priority).high && !running.lane.high) {
        running.lane.high = true;
        this.client.limiter.pump();
      }
      this.stats.shared++;
      return running.p;
    }
    const lane = laneOf(priority);
    const p = this.fetch(hex, opts, lane).finally(() => this.inflight.delete(hex));
    this.inflight.set(hex, { lane, p });
    return p;
  }

  private async fetch(hex: string, opts: BlobReadOptions, lane: Lane): Promise<Uint8Array> {
    if (this.cache) {
      const hit = await this.cache.get(hex, opts.expectedSize);
      if (hit) {
        this.stats.cacheHits++;
        return hit;
      }
    }
    const bytes = await this.client.getBlob(hex, { what: opts.what, expectedSize: opts.expectedSize, maxSize: opts.maxSize ?? DEFAULT_MAX_BLOB, priority: lane });
    this.stats.fetches++;
    this.stats.fetchedBytes += bytes.length;
    // getBlob verified the sha256: only now may the bytes be kept.
    await this.cache?.put(hex, bytes);
    return bytes;
  }
}

export interface RemoteImageOptions extends RegistryClientOptions {
  cache?: DiskCache | null;
}

export class RemoteImageSource implements ImageSource {
  readonly location: string;
  readonly reference: string;
  readonly label: string;

  constructor(
    readonly ref: RemoteRef,
    readonly client: RegistryClient,
    readonly blobs: RemoteBlobSource,
    private readonly manifest: ResolvedManifest,
  ) {
    this.location = client.name;
    this.reference = ref.tag ?? `@sha256:${manifest.hex}`;
    this.label = formatRemoteRef(ref, { digest: manifest.hex });
  }

  /** Hex sha256 of the pinned manifest. */
  get digest(): string {
    return this.manifest.hex;
  }

  async readManifest(): Promise<ResolvedManifest> {
    return this.manifest;
  }

  close(): void {
    this.client.close();
  }
}

/** Resolve (a tag, once) and fetch the manifest, verified against its digest. */
async function fetchManifest(client: RegistryClient, ref: RemoteRef, cache: DiskCache | null): Promise<ResolvedManifest> {
  let hex: string;
  let bytes: Uint8Array | null = null;
  let contentType: string | undefined;
  const shown = formatRemoteRef(ref);
  if (ref.digest !== undefined) {
    hex = ref.digest;
    // Pinned by digest: a cached manifest is as good as the registry's, so a restart needs no network.
    bytes = (await cache?.get(hex)) ?? null;
    if (!bytes) {
      const m = await client.getManifest(`sha256:${hex}`);
      bytes = m.bytes;
      contentType = m.contentType;
      const got = sha256Hex(bytes);
      if (got !== hex) throw PfsError.digest(`manifest ${shown}`, hex, got);
    }
  } else {
    const m = await client.getManifest(ref.tag!);
    bytes = m.bytes;
    contentType = m.contentType;
    hex = sha256Hex(bytes);
    if (m.digest !== undefined && m.digest !== `sha256:${hex}`) {
      throw PfsError.digest(`manifest ${shown} (Docker-Content-Digest)`, m.digest.replace(/^sha256:/, ""), hex);
    }
    log.oci("pinned %s -> sha256:%s", shown, hex);
  }
  await cache?.put(hex, bytes);
  const what = `manifest ${formatRemoteRef(ref, { digest: hex })}`;
  const raw = parseJson(bytes, what) as { mediaType?: unknown } | null;
  if (contentType?.startsWith(MediaType.INDEX) || (typeof raw === "object" && raw !== null && raw.mediaType === MediaType.INDEX)) {
    throw new PfsError(ErrorCode.UNSUPPORTED, `${what} is an image index, not an image manifest`, {
      hint: "name one platform's manifest by its digest (oci://HOST/REPO@sha256:…)",
      data: { what },
    });
  }
  const manifest = parseManifest(bytes, what);
  return {
    tag: ref.tag ?? "",
    descriptor: { mediaType: MediaType.MANIFEST, digest: `sha256:${hex}`, size: bytes.length },
    hex,
    bytes,
    manifest,
  };
}

/** Open an image in a registry: the manifest is fetched (once) now; blobs when read. */
export async function openRemoteImage(ref: RemoteRef, opts: RemoteImageOptions = {}): Promise<RemoteImageSource> {
  const client = new RegistryClient(ref, opts);
  try {
    const cache = opts.cache ?? null;
    const manifest = await fetchManifest(client, ref, cache);
    if (manifest.bytes.length > MAX_MANIFEST_BYTES) throw PfsError.limit(`manifest ${client.name}`, `${manifest.bytes.length} bytes`);
    return new RemoteImageSource(ref, client, new RemoteBlobSource(client, cache), manifest);
  } catch (e) {
    client.close();
    throw e;
  }
}
