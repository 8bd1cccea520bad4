/**
 * Public API of the synthesized ext4 image (ARCHITECTURE.md `src/ext/`):
 *
 *   const plan = planExtImage(tree, { mtime, digest, label });  // metadata only
 *   const dev = new ExtImage(plan);                              // a BlockDevice
 *   await exportImage(dev, "out.img", (done, total) => …);       // sparse file
 *   describe(plan)                                               // `puzzlefs info --ext`
 *
 * Mapping notes: a tree node of kind "unknown" becomes an empty regular
 * file with the node's permissions and owner (the name stays visible and
 * nothing is invented). Timestamps all equal `mtime`. /lost+found is
 * synthesized (inode 11, mode 0700) unless the tree has one.
 */
import { open } from "node:fs/promises";
import { PfsError } from "../common/errors.ts";
import { GEOM } from "./constants.ts";
import type { ExtPlan } from "./layout/plan.ts";
import { RK, classOf, regionKindName } from "./layout/regions.ts";
import { ExtImage } from "./render/image.ts";
import { FEATURES, freeBlocks } from "./render/meta.ts";

export { planExtImage, type ExtPlan } from "./layout/plan.ts";
export type { ExtOptions } from "./layout/options.ts";
export type { Region } from "./layout/regions.ts";
export { ExtImage } from "./render/image.ts";

/** Feature names, as dumpe2fs prints them. */
export const FEATURE_NAMES = [
  "ext_attr",
  "dir_index",
  "filetype",
  "extent",
  "flex_bg",
  "sparse_super",
  "large_file",
  "huge_file",
  "dir_nlink",
  "extra_isize",
  "metadata_csum",
  "read-only",
] as const;

export interface ExtDescription {
  size: number;
  blockSize: number;
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  inodeCount: number;
  inodesUsed: number;
  freeBlocks: number;
  uuid: string;
  label: string;
  features: readonly string[];
  featureFlags: { compat: number; incompat: number; roCompat: number };
  /** Blocks per region kind ("file", "directory", "inode table", ...). */
  blocksByKind: Record<string, number>;
  regions: number;
  warnings: readonly string[];
}

const uuidString = (u: Uint8Array): string => {
  const h = Buffer.from(u).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

export function describe(plan: ExtPlan): ExtDescription {
  const blocksByKind: Record<string, number> = {};
  const rt = plan.regions;
  for (let i = 0; i < rt.count; i++) {
    const name = regionKindName(rt.kind[i]!);
    blocksByKind[name] = (blocksByKind[name] ?? 0) + rt.len[i]!;
  }
  return {
    size: plan.size,
    blockSize: GEOM.BLOCK_SIZE,
    blocks: plan.geo.blocks,
    groups: plan.geo.groups,
    inodesPerGroup: plan.geo.inodesPerGroup,
    inodeCount: plan.geo.inodeCount,
    inodesUsed: plan.inodes.count,
    freeBlocks: freeBlocks(plan),
    uuid: uuidString(plan.opts.uuid),
    label: new TextDecoder().decode(plan.opts.label),
    features: FEATURE_NAMES,
    featureFlags: { ...FEATURES },
    blocksByKind,
    regions: rt.count,
    warnings: plan.warnings,
  };
}

const ZERO = Buffer.alloc(1 << 20);
/** memcmp against a zero buffer, a chunk at a time. */
function isZero(b: Uint8Array): boolean {
  for (let at = 0; at < b.length; at += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - at);
    if (Buffer.compare(Buffer.from(b.buffer, b.byteOffset + at, n), ZERO.subarray(0, n)) !== 0) return false;
  }
  return true;
}

export type ExportProgress = (done: number, total: number) => void;

/**
 * Write the whole device to `path` as a sparse file: zero regions are
 * skipped (left as holes), and so are all-zero 1 MiB chunks of file data.
 * `onProgress(bytesDone, bytesTotal)` counts the allocated bytes.
 */
export async function exportImage(dev: ExtImage, path: string, onProgress?: ExportProgress): Promise<void> {
  const CHUNK = 1 << 20;
  const rt = dev.plan.regions;
  let total = 0;
  for (let i = 0; i < rt.count; i++) if (classOf(rt.kind[i]!) !== "zero") total += rt.len[i]! * GEOM.BLOCK_SIZE;
  let fh;
  try {
    fh = await open(path, "w");
  } catch (e) {
    throw PfsError.io(`export to ${path}`, e);
  }
  try {
    await fh.truncate(dev.size);
    let done = 0;
    for (let i = 0; i < rt.count; i++) {
      if (classOf(rt.kind[i]!) === "zero") continue;
      const s = rt.start[i]! * GEOM.BLOCK_SIZE;
      const e = s + rt.len[i]! * GEOM.BLOCK_SIZE;
      for (let at = s; at < e; at += CHUNK) {
        const n = Math.min(CHUNK, e - at);
        const buf = await dev.readAt(at, n);
        if (rt.kind[i] !== RK.FILE || !isZero(buf)) await fh.write(buf, 0, n, at);
        done += n;
        onProgress?.(done, total);
      }
    }
  } catch (e) {
    throw e instanceof PfsError ? e : PfsError.io(`export to ${path}`, e);
  } finally {
    await fh.close();
  }
}
