/**
 * `--prefetch`: after an image is open, fetch in the background, at low
 * priority, the chunk blobs of the files a boot usually reads first (all
 * files under `/etc` and `/usr/lib` by default), so that later reads find
 * them in the local cache. Only blob sources that have a slow path (a
 * registry) do anything; the bytes go to their disk cache, not to memory.
 * Best effort: a failed blob is logged and counted, a missing path skipped.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { parseDigest } from "../../oci/digest.ts";
import { MediaType } from "../../oci/manifest.ts";
import { DEFAULT_MAX_CHUNK_BLOB } from "./chunks.ts";
import type { PuzzleImage } from "./image.ts";
import { lookupPath } from "./path.ts";

export const DEFAULT_PREFETCH_PATHS = ["/etc", "/usr/lib"] as const;

export interface PrefetchOptions {
  paths?: readonly string[];
  /** Stop early (the server is shutting down). */
  signal?: AbortSignal;
  /** Blobs requested at once; the registry client's low lane caps it further. Default 2. */
  parallel?: number;
}

export interface PrefetchResult {
  files: number;
  /** Distinct chunk blobs under the paths, and how many of them could not be fetched. */
  blobs: number;
  failed: number;
}

/** Distinct chunk blobs of the regular files under `paths`, in walk order. */
export function blobsUnder(img: PuzzleImage, paths: readonly string[]): { files: number; blobs: string[] } {
  const tree = img.tree;
  const seen = new Set<number>();
  const blobs = new Set<string>();
  let files = 0;
  for (const p of paths) {
    let ino: number;
    try {
      ino = lookupPath(tree, p);
    } catch (e) {
      if (e instanceof PfsError && e.code === ErrorCode.NOT_FOUND) continue;
      throw e;
    }
    const stack = [ino];
    while (stack.length) {
      const i = stack.pop()!;
      if (seen.has(i)) continue;
      seen.add(i);
      const kind = tree.kind(i);
      if (kind === "dir") for (const e of tree.entries(i)) stack.push(e.ino);
      else if (kind === "file") {
        files++;
        for (const b of tree.fileBlobs(i)) blobs.add(b.hex);
      }
    }
  }
  return { files, blobs: [...blobs] };
}

export async function prefetchPaths(img: PuzzleImage, opts: PrefetchOptions = {}): Promise<PrefetchResult> {
  const { files, blobs } = blobsUnder(img, opts.paths ?? DEFAULT_PREFETCH_PATHS);
  const result: PrefetchResult = { files, blobs: blobs.length, failed: 0 };
  const source = img.source.blobs;
  if (!source.prefetch) return result;
  const sizes = new Map<string, number>();
  for (const l of img.manifest.manifest.layers) {
    if (l.mediaType === MediaType.FILEDATA || l.mediaType === MediaType.FILEDATA_ZSTD) sizes.set(parseDigest(l.digest, "layer"), l.size);
  }
  let next = 0;
  const worker = async () => {
    while (next < blobs.length && !opts.signal?.aborted) {
      const hex = blobs[next++]!;
      try {
        await source.prefetch!(hex, { what: `chunk blob sha256:${hex}`, expectedSize: sizes.get(hex), maxSize: DEFAULT_MAX_CHUNK_BLOB });
      } catch (e) {
        result.failed++;
        log.pfs("prefetch %s failed: %s", hex, (e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 2) }, worker));
  log.pfs("prefetched %d blobs of %d files under %s (%d failed)", blobs.length - result.failed, files, (opts.paths ?? DEFAULT_PREFETCH_PATHS).join(", "), result.failed);
  return result;
}
