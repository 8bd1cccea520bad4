/**
 * Block-level geometry (blockgroup.rst, STYLE.md §6): groups of 32768
 * blocks; the primary superblock and group descriptor table (GDT) at blocks
 * 0..gdt, backup copies at the start of groups 1 and powers of 3, 5, 7
 * (sparse_super); with flex_bg all bitmaps and inode tables packed right
 * after the primary GDT; then the data area, a logical sequence of blocks
 * laid over the physical ones with the backup copies cut out as holes.
 *
 * `planGeometry` iterates to a fixed point: the group count decides the
 * inodes per group, GDT size and backups; those decide where data lands,
 * hence how many extents (and extent tree blocks) files need, hence the
 * block count, hence the group count.
 */
import { PfsError, ErrorCode } from "../../common/errors.ts";
import { GEOM } from "../constants.ts";
import { lastAtMost } from "./arrays.ts";

const BPG = GEOM.BLOCKS_PER_GROUP;

/** sparse_super: group 0, 1 and powers of 3, 5 and 7 hold superblock copies. */
export function hasBackup(g: number): boolean {
  if (g <= 1) return true;
  for (const b of [3, 5, 7]) {
    let p = b;
    while (p < g) p *= b;
    if (p === g) return true;
  }
  return false;
}

/** Physically contiguous pieces of the data area. */
export class DataMap {
  /**
   * @param start physical block of logical block 0
   * @param holeL logical block right after each hole (sorted)
   * @param holeLen blocks in every hole (a superblock + GDT copy)
   */
  constructor(
    readonly start: number,
    readonly holeL: Float64Array,
    readonly holeLen: number,
  ) {}

  phys(l: number): number {
    return this.start + l + this.holeLen * (lastAtMost(this.holeL, this.holeL.length, l) + 1);
  }

  /** cb(physStart, len, logicalOffsetInRange) for each contiguous piece of [l, l+n). */
  pieces(l: number, n: number, cb: (p: number, len: number, off: number) => void): void {
    let h = lastAtMost(this.holeL, this.holeL.length, l) + 1;
    let at = l;
    const end = l + n;
    while (at < end) {
      const stop = h < this.holeL.length ? Math.min(end, this.holeL[h]!) : end;
      if (stop > at) cb(this.start + at + this.holeLen * h, stop - at, at - l);
      at = stop;
      h++;
    }
  }
}

export interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  inodeCount: number;
  /** Inode table blocks per group. */
  itb: number;
  gdtBlocks: number;
  /** Groups other than 0 with a superblock + GDT copy at their first block. */
  backupGroups: number[];
  bbLoc: Uint32Array;
  ibLoc: Uint32Array;
  itLoc: Uint32Array;
  /** Free (unallocated) block ranges, sorted: [start, len] pairs. */
  free: Array<[number, number]>;
  /** Free blocks in each group. */
  freeInGroup: Uint32Array;
  data: DataMap;
  /** Logical blocks used in the data area. */
  dataBlocks: number;
}

/**
 * @param inodes highest ext inode number used
 * @param dataBlocks logical data-area blocks other than extent tree blocks
 * @param treeBlocks extent tree blocks the data needs under a given layout
 */
export function planGeometry(inodes: number, dataBlocks: number, treeBlocks: (m: DataMap) => number): Geometry {
  let groups = Math.max(1, Math.ceil(inodes / GEOM.BLOCKS_PER_GROUP));
  for (let round = 0; ; round++) {
    if (round > 64) throw PfsError.internal("geometry did not converge");
    const g = layoutFor(groups, inodes);
    const d = dataBlocks + treeBlocks(g.data);
    const end = d > 0 ? g.data.phys(d - 1) + 1 : g.data.start;
    const need = Math.ceil(end / BPG);
    if (need > groups) {
      groups = need;
      continue;
    }
    // Every group must exist physically: the last one holds at least its backup and one block.
    const last = groups - 1;
    const minEnd = last === 0 ? end : last * BPG + (hasBackup(last) ? 1 + g.gdtBlocks : 0) + 1;
    const blocks = Math.max(end, minEnd);
    if (blocks > 0xffff_ffff) {
      throw new PfsError(ErrorCode.UNSUPPORTED, `image needs ${blocks} blocks; without the 64bit feature ext4 holds at most 2^32 - 1 (16 TiB)`);
    }
    const free = g.gaps.slice();
    addFree(free, end, blocks, g.backupGroups, g.gdtBlocks);
    return { ...g, blocks, free, freeInGroup: freePerGroup(free, groups), dataBlocks: d };
  }
}

type Layout = Omit<Geometry, "blocks" | "free" | "freeInGroup" | "dataBlocks"> & { gaps: Array<[number, number]> };

function layoutFor(groups: number, inodes: number): Layout {
  const inodesPerGroup = Math.max(GEOM.INODES_PER_BLOCK, Math.ceil(Math.ceil(inodes / groups) / GEOM.INODES_PER_BLOCK) * GEOM.INODES_PER_BLOCK);
  const itb = inodesPerGroup / GEOM.INODES_PER_BLOCK;
  const gdtBlocks = Math.ceil(groups / GEOM.DESCS_PER_BLOCK);
  const backupGroups: number[] = [];
  for (let g = 1; g < groups; g++) if (hasBackup(g)) backupGroups.push(g);
  const holeLen = 1 + gdtBlocks;
  const gaps: Array<[number, number]> = [];
  let pos = 1 + gdtBlocks;
  let h = 0;
  /** Next `n` contiguous blocks that avoid backup copies; skipped blocks stay free. */
  const take = (n: number): number => {
    for (;;) {
      if (h >= backupGroups.length) break;
      const hs = backupGroups[h]! * BPG;
      if (pos >= hs) {
        pos = Math.max(pos, hs + holeLen);
        h++;
      } else if (pos + n > hs) {
        gaps.push([pos, hs - pos]);
        pos = hs + holeLen;
        h++;
      } else break;
    }
    const at = pos;
    pos += n;
    return at;
  };
  const bbLoc = new Uint32Array(groups);
  const ibLoc = new Uint32Array(groups);
  const itLoc = new Uint32Array(groups);
  for (let g = 0; g < groups; g++) bbLoc[g] = take(1);
  for (let g = 0; g < groups; g++) ibLoc[g] = take(1);
  for (let g = 0; g < groups; g++) itLoc[g] = take(itb);
  const start = take(0);
  const holeL: number[] = [];
  for (let k = h; k < backupGroups.length; k++) holeL.push(backupGroups[k]! * BPG - start - (k - h) * holeLen);
  return {
    groups,
    inodesPerGroup,
    inodeCount: inodesPerGroup * groups,
    itb,
    gdtBlocks,
    backupGroups,
    bbLoc,
    ibLoc,
    itLoc,
    gaps,
    data: new DataMap(start, Float64Array.from(holeL), holeLen),
  };
}

/** [from, to) minus backup copies, appended to the free list. */
function addFree(free: Array<[number, number]>, from: number, to: number, backups: number[], gdtBlocks: number): void {
  let at = from;
  for (const g of backups) {
    const hs = g * BPG;
    const he = hs + 1 + gdtBlocks;
    if (he <= at) continue;
    if (hs >= to) break;
    if (hs > at) free.push([at, hs - at]);
    at = Math.max(at, he);
  }
  if (to > at) free.push([at, to - at]);
}

function freePerGroup(free: Array<[number, number]>, groups: number): Uint32Array {
  const out = new Uint32Array(groups);
  for (const [s, n] of free) {
    for (let b = s; b < s + n; ) {
      const g = Math.floor(b / BPG);
      const end = Math.min(s + n, (g + 1) * BPG);
      out[g]! += end - b;
      b = end;
    }
  }
  return out;
}
