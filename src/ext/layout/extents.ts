/**
 * Extents of an inode's data and the shape of its extent tree (ifork.rst).
 * Data is contiguous in the logical data area; physically it breaks only
 * at backup superblock copies, and an extent maps at most 32768 blocks.
 * Up to 4 extents live in the inode; beyond that a tree of 4 KiB blocks
 * (340 entries each) hangs below the in-inode root.
 */
import { GEOM } from "../constants.ts";
import { EXTENTS_IN_INODE, EXTENTS_PER_BLOCK } from "../struct/extent.ts";
import { lastAtMost } from "./arrays.ts";
import type { DataMap } from "./geometry.ts";

export interface Extent {
  /** First file block. */
  lblk: number;
  len: number;
  /** First physical block. */
  pblk: number;
}

/** Extents [from, to) of the data at logical [l, l+n). */
export function extentsOf(map: DataMap, l: number, n: number, from = 0, to = Infinity): Extent[] {
  const out: Extent[] = [];
  let idx = 0;
  map.pieces(l, n, (p, len, off) => {
    const k = Math.ceil(len / GEOM.MAX_EXTENT_LEN);
    if (idx + k <= from || idx >= to) {
      idx += k;
      return;
    }
    for (let j = 0; j < k; j++, idx++) {
      if (idx < from || idx >= to) continue;
      const o = j * GEOM.MAX_EXTENT_LEN;
      out.push({ lblk: off + o, len: Math.min(GEOM.MAX_EXTENT_LEN, len - o), pblk: p + o });
    }
  });
  return out;
}

export function extentCount(map: DataMap, l: number, n: number): number {
  const holes = map.holeL;
  let h = lastAtMost(holes, holes.length, l) + 1;
  if (h >= holes.length || holes[h]! >= l + n) return Math.ceil(n / GEOM.MAX_EXTENT_LEN); // no hole inside: the common case
  let c = 0;
  for (let at = l, end = l + n; at < end; h++) {
    const stop = h < holes.length ? Math.min(end, holes[h]!) : end;
    c += Math.ceil((stop - at) / GEOM.MAX_EXTENT_LEN);
    at = stop;
  }
  return c;
}

export interface TreeShape {
  /** eh_depth of the in-inode root. */
  depth: number;
  /** Blocks per level, from just below the root down to the leaves. */
  levels: number[];
  /** Total tree blocks. */
  blocks: number;
}

/** null when the extents fit in the inode. */
export function treeShape(extents: number): TreeShape | null {
  if (extents <= EXTENTS_IN_INODE) return null;
  const levels = [Math.ceil(extents / EXTENTS_PER_BLOCK)];
  while (levels[0]! > EXTENTS_IN_INODE) levels.unshift(Math.ceil(levels[0]! / EXTENTS_PER_BLOCK));
  return { depth: levels.length, levels, blocks: levels.reduce((a, b) => a + b, 0) };
}

/** Extents covered by one block at `level` (0 = just below the root). */
export function extentsPerBlockAt(shape: TreeShape, level: number): number {
  return EXTENTS_PER_BLOCK ** (shape.depth - level);
}
