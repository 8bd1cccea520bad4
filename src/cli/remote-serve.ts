/**
 * `serve oci://HOST[:PORT]/REPO…`: registry images as NBD exports. Each
 * image is opened once (its tag pinned to a digest), planned as the same
 * ext image `serve OCI_DIR` would give for the same manifest, and read
 * lazily: a chunk is fetched when a block that needs it is read, through the
 * shared disk cache. With `--prefetch`, the chunks of files under the given
 * paths are fetched in the background at low priority after start.
 *
 *   serve oci://H/REPO:TAG          one export, named TAG
 *   serve oci://H/REPO@sha256:D     one export, named sha256:D
 *   serve oci://H/REPO --tag A …    one export per tag; every tag without --tag
 */
import type { BlockDevice, Extent } from "../common/blockdev.ts";
import { PfsError } from "../common/errors.ts";
import { log } from "../common/debug.ts";
import { describe } from "../ext/index.ts";
import type { ExtImage } from "../ext/render/image.ts";
import { RegistryClient } from "../oci/remote/client.ts";
import { formatRemoteRef, parseRemoteRef } from "../oci/remote/ref.ts";
import type { RemoteImageSource } from "../oci/remote/source.ts";
import { openImage } from "../puzzlefs/reader/image.ts";
import { prefetchPaths } from "../puzzlefs/reader/prefetch.ts";
import { planFor } from "./export.ts";
import { openCacheArg, registryClientOptions, openRemoteArg, type RegistryCliOptions } from "./remote-args.ts";
import type { ServedExport } from "./serve.ts";

export interface RemoteServeOptions {
  cacheSize: number;
  registry?: RegistryCliOptions;
  /** Paths whose files' chunks to prefetch; null or empty: none. */
  prefetch?: readonly string[] | null;
}

/** The ext image of a registry image; closing it stops its prefetch and releases its sockets. */
export class RemoteExtDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  private readonly stop = new AbortController();
  /** Settles when the background prefetch is done (tests). */
  prefetching: Promise<void> = Promise.resolve();

  constructor(
    readonly ext: ExtImage,
    readonly source: RemoteImageSource,
  ) {
    this.size = ext.size;
    this.blockSize = ext.blockSize;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.ext.read(offset, length);
  }

  readInto(offset: number, dest: Uint8Array): Promise<void> {
    return this.ext.readInto(offset, dest);
  }

  allocation(offset: number, length: number): Extent[] {
    return this.ext.allocation(offset, length);
  }

  prefetch(offset: number, length: number): Promise<void> {
    return this.ext.prefetch(offset, length);
  }

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.prefetching.catch(() => {});
    this.source.close();
  }
}

/** Open the images `ref` (and `tags`) names as ext exports. */
export async function openRemoteExports(ref: string, tags: readonly string[], o: RemoteServeOptions): Promise<Map<string, ServedExport>> {
  const r = parseRemoteRef(ref, { tagOptional: true });
  const reg = o.registry ?? {};
  if ((r.tag !== undefined || r.digest !== undefined) && tags.length > 0) {
    throw PfsError.usage(`${ref} already names one image; --tag is for a repository`, `serve ${formatRemoteRef({ ...r, tag: undefined, digest: undefined })} --tag TAG …`);
  }
  let refs: string[];
  if (r.tag !== undefined || r.digest !== undefined) refs = [ref];
  else {
    let names = [...tags];
    if (names.length === 0) {
      const client = new RegistryClient(r, await registryClientOptions(r, reg));
      try {
        names = await client.listTags();
      } finally {
        client.close();
      }
    }
    refs = names.map((t) => formatRemoteRef({ ...r, tag: t }));
  }
  // One cache object per process: its byte count and eviction are then shared by every export.
  const cache = await openCacheArg(reg);
  const out = new Map<string, ServedExport>();
  try {
    for (const x of refs) {
      const source = await openRemoteArg(x, reg, cache);
      let dev: RemoteExtDevice;
      try {
        const img = await openImage(source, { cacheBytes: o.cacheSize });
        dev = new RemoteExtDevice(planFor(img), source);
        const d = describe(dev.ext.plan);
        for (const w of d.warnings) process.stderr.write(`puzzlefs: warning: ${x}: ${w}\n`);
        const name = img.manifest.tag !== "" ? img.manifest.tag : `sha256:${source.digest}`;
        out.set(name, { device: dev, description: `ext4 image of ${source.label} (${d.inodesUsed} inodes, uuid ${d.uuid})` });
        if (o.prefetch && o.prefetch.length > 0) {
          dev.prefetching = prefetchPaths(img, { paths: o.prefetch, signal: dev.signal }).then(
            (p) => log.pfs("%s: prefetched %d blobs of %d files (%d failed)", x, p.blobs - p.failed, p.files, p.failed),
            (e: unknown) => log.pfs("%s: prefetch stopped: %s", x, (e as Error).message),
          );
        }
      } catch (e) {
        source.close();
        throw e;
      }
    }
    return out;
  } catch (e) {
    await Promise.allSettled([...out.values()].map((x) => x.device.close?.()));
    throw e;
  }
}
