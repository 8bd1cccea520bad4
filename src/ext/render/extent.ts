/**
 * Extent tree rendering: the in-inode root (i_block) and tree blocks in the
 * extent-tree section of the data area. Tree blocks of one inode are laid
 * out level by level from just below the root down to the leaves
 * (layout/extents.ts), so block k of level v covers entries
 * [k*340, (k+1)*340) of level v+1, or extents when v is the leaf level.
 */
import { PfsError } from "../../common/errors.ts";
import { GEOM } from "../constants.ts";
import { setExtentBlockCsum } from "../csum.ts";
import { lastAtMost } from "../layout/arrays.ts";
import { extentCount, extentsOf, extentsPerBlockAt, treeShape, type TreeShape } from "../layout/extents.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { EXTENT, EXTENT_HEADER, EXTENTS_IN_INODE, EXTENTS_PER_BLOCK, writeExtent, writeExtentHeader, writeExtentIdx } from "../struct/extent.ts";

export function shapeOf(plan: ExtPlan, e: number): TreeShape | null {
  const { inodes } = plan;
  return treeShape(extentCount(plan.geo.data, inodes.dataL[e]!, inodes.nblocks[e]!));
}

/** Physical block of tree block `k` (0-based, in layout order) of inode e. */
function treeBlockPhys(plan: ExtPlan, e: number, k: number): number {
  const t = plan.trees.byIno.get(e);
  if (t === undefined) throw PfsError.internal(`inode ${e} has no extent tree`);
  return plan.geo.data.phys(plan.trees.start[t]! + k);
}

/** First file block of extent number `idx` of inode e. */
function lblkOfExtent(plan: ExtPlan, e: number, idx: number): number {
  return extentsOf(plan.geo.data, plan.inodes.dataL[e]!, plan.inodes.nblocks[e]!, idx, idx + 1)[0]!.lblk;
}

/** Index entries for blocks [from, to) of `level` (they sit after the blocks of the levels above). */
function writeIndex(plan: ExtPlan, e: number, shape: TreeShape, level: number, from: number, to: number, buf: Uint8Array, off: number): void {
  let base = 0;
  for (let v = 0; v < level; v++) base += shape.levels[v]!;
  const per = extentsPerBlockAt(shape, level);
  for (let j = from; j < to; j++) {
    writeExtentIdx(buf, off + (j - from) * EXTENT.size, lblkOfExtent(plan, e, j * per), treeBlockPhys(plan, e, base + j));
  }
}

/** The 60-byte i_block of an extent-mapped inode. */
export function writeExtentRoot(plan: ExtPlan, e: number, iblock: Uint8Array): void {
  const { inodes } = plan;
  const n = inodes.nblocks[e]!;
  const shape = n > 0 ? shapeOf(plan, e) : null;
  if (!shape) {
    const ext = n > 0 ? extentsOf(plan.geo.data, inodes.dataL[e]!, n) : [];
    writeExtentHeader(iblock, 0, ext.length, EXTENTS_IN_INODE, 0);
    ext.forEach((x, i) => writeExtent(iblock, EXTENT_HEADER.size + i * EXTENT.size, x.lblk, x.len, x.pblk));
    return;
  }
  writeExtentHeader(iblock, 0, shape.levels[0]!, EXTENTS_IN_INODE, shape.depth);
  writeIndex(plan, e, shape, 0, 0, shape.levels[0]!, iblock, EXTENT_HEADER.size);
}

/** Tree blocks an inode owns (counted in i_blocks). */
export function treeBlocksOf(plan: ExtPlan, e: number): number {
  return plan.trees.byIno.has(e) ? (shapeOf(plan, e)?.blocks ?? 0) : 0;
}

/** The extent tree block at logical data-area block `l`. */
export function renderExtentTreeBlock(plan: ExtPlan, l: number): Uint8Array {
  const { trees } = plan;
  const t = lastAtMost(trees.start, trees.start.length, l);
  const e = trees.ino[t]!;
  const shape = shapeOf(plan, e)!;
  let k = l - trees.start[t]!;
  let level = 0;
  while (k >= shape.levels[level]!) k -= shape.levels[level++]!;
  const buf = new Uint8Array(GEOM.BLOCK_SIZE);
  const depth = shape.depth - 1 - level;
  if (depth === 0) {
    const ext = extentsOf(plan.geo.data, plan.inodes.dataL[e]!, plan.inodes.nblocks[e]!, k * EXTENTS_PER_BLOCK, (k + 1) * EXTENTS_PER_BLOCK);
    writeExtentHeader(buf, 0, ext.length, EXTENTS_PER_BLOCK, 0);
    ext.forEach((x, i) => writeExtent(buf, EXTENT_HEADER.size + i * EXTENT.size, x.lblk, x.len, x.pblk));
  } else {
    const from = k * EXTENTS_PER_BLOCK;
    const to = Math.min(from + EXTENTS_PER_BLOCK, shape.levels[level + 1]!);
    writeExtentHeader(buf, 0, to - from, EXTENTS_PER_BLOCK, depth);
    writeIndex(plan, e, shape, level + 1, from, to, buf, EXTENT_HEADER.size);
  }
  setExtentBlockCsum(plan.opts.csumSeed, e, 0, buf);
  return buf;
}
