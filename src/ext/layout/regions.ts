/**
 * The region map: a sorted, contiguous list of block ranges covering the
 * whole device, each saying what renders it (STYLE.md §6, nbdkit
 * common/regions). Stored as parallel typed arrays (a planned image may
 * have one region per file); `regionAt` materializes one for callers.
 */
import { PfsError } from "../../common/errors.ts";
import { GEOM } from "../constants.ts";
import { grow, lastAtMost, trim } from "./arrays.ts";

/** What fills a region. `arg`/`arg2` meaning is per kind. */
export const RK = {
  /** Block 0 (primary superblock) and the GDT. */
  PRIMARY: 0,
  /** Superblock + GDT copy; arg = group. */
  BACKUP: 1,
  /** arg = group of the first block. */
  BLOCK_BITMAP: 2,
  INODE_BITMAP: 3,
  /** Inode table blocks holding used inodes; arg = group, arg2 = block within its table. */
  INODE_TABLE: 4,
  /** Data-area metadata; arg = logical data-area block of the region's first block. */
  XATTR: 5,
  DIR: 6,
  SYMLINK: 7,
  EXTENT_TREE: 8,
  /** File contents; arg = ext inode, arg2 = file block of the region's first block. */
  FILE: 9,
  /** Inode table blocks with no used inode: allocated, all zeros. */
  INODE_TABLE_UNUSED: 10,
  /** Unallocated blocks. */
  FREE: 11,
} as const;
export type RegionKind = (typeof RK)[keyof typeof RK];

const NAMES = ["superblock+gdt", "backup superblock+gdt", "block bitmap", "inode bitmap", "inode table", "xattr block", "directory", "symlink", "extent tree", "file", "unused inode table", "free"];

export type RegionClass = "meta" | "file" | "zero";
export const classOf = (k: number): RegionClass => (k === RK.FILE ? "file" : k >= RK.INODE_TABLE_UNUSED ? "zero" : "meta");

/** One region in bytes, as `describe()`, `allocation()` and tests see it. */
export interface Region {
  start: number;
  len: number;
  kind: RegionClass;
  what: string;
  /** file regions: the ext inode and the file byte offset of `start`. */
  ino?: number;
  fileOffset?: number;
}

/** Merge with the previous region when the same renderer continues seamlessly. */
function continues(k: number, prevArg: number, prevArg2: number, prevLen: number, arg: number, arg2: number): boolean {
  switch (k) {
    case RK.INODE_TABLE_UNUSED:
    case RK.FREE:
    case RK.PRIMARY:
      return true;
    case RK.BLOCK_BITMAP:
    case RK.INODE_BITMAP:
    case RK.XATTR:
    case RK.DIR:
    case RK.SYMLINK:
    case RK.EXTENT_TREE:
      return prevArg + prevLen === arg;
    case RK.FILE:
      return prevArg === arg && prevArg2 + prevLen === arg2;
    default:
      return false;
  }
}

export class RegionTable {
  count = 0;
  start: Float64Array;
  len: Float64Array;
  kind: Uint8Array;
  arg: Float64Array;
  arg2: Float64Array;

  /** `expected`: a good guess of the region count saves regrowing the arrays. */
  constructor(expected = 64) {
    const n = Math.max(16, expected);
    this.start = new Float64Array(n);
    this.len = new Float64Array(n);
    this.kind = new Uint8Array(n);
    this.arg = new Float64Array(n);
    this.arg2 = new Float64Array(n);
  }

  /** Blocks covered so far (the next region must start here). */
  get end(): number {
    return this.count === 0 ? 0 : this.start[this.count - 1]! + this.len[this.count - 1]!;
  }

  /** Append [start, start+len) blocks; asserts contiguity (STYLE.md §6). */
  push(start: number, len: number, kind: RegionKind, arg = 0, arg2 = 0): void {
    if (len <= 0) return;
    if (start !== this.end) throw PfsError.internal(`region ${NAMES[kind]} at block ${start}, expected ${this.end}`);
    const i = this.count - 1;
    if (i >= 0 && this.kind[i] === kind && continues(kind, this.arg[i]!, this.arg2[i]!, this.len[i]!, arg, arg2)) {
      this.len[i]! += len;
      return;
    }
    if (this.count === this.start.length) {
      this.start = grow(this.start);
      this.len = grow(this.len);
      this.kind = grow(this.kind);
      this.arg = grow(this.arg);
      this.arg2 = grow(this.arg2);
    }
    const j = this.count++;
    this.start[j] = start;
    this.len[j] = len;
    this.kind[j] = kind;
    this.arg[j] = arg;
    this.arg2[j] = arg2;
  }

  seal(): void {
    this.start = trim(this.start, this.count);
    this.len = trim(this.len, this.count);
    this.kind = trim(this.kind, this.count);
    this.arg = trim(this.arg, this.count);
    this.arg2 = trim(this.arg2, this.count);
  }

  /** Index of the region containing `block`. */
  find(block: number): number {
    return lastAtMost(this.start, this.count, block);
  }

  regionAt(i: number): Region {
    const k = this.kind[i]!;
    const r: Region = { start: this.start[i]! * GEOM.BLOCK_SIZE, len: this.len[i]! * GEOM.BLOCK_SIZE, kind: classOf(k), what: NAMES[k]! };
    if (k === RK.FILE) {
      r.ino = this.arg[i]!;
      r.fileOffset = this.arg2[i]! * GEOM.BLOCK_SIZE;
    }
    return r;
  }

  *regions(): Generator<Region> {
    for (let i = 0; i < this.count; i++) yield this.regionAt(i);
  }
}

export const regionKindName = (k: number): string => NAMES[k] ?? `unknown (${k})`;
