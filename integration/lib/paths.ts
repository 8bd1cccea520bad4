/**
 * Where the harness keeps things. Everything downloaded or generated lives
 * under the repository's `.cache/` (gitignored), created on demand:
 *   .cache/guest/    kernel, busybox and nbd-client .debs, unpacked, and the initramfs
 *   .cache/corpus/   the debootstrap rootfs, the torture tree, the delta tree
 *   .cache/run/      per-run scratch: images, logs, mount points (wiped per file)
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
export const CACHE = join(REPO, ".cache");

export function cacheDir(...parts: string[]): string {
  const p = join(CACHE, ...parts);
  mkdirSync(p, { recursive: true });
  return p;
}
