/**
 * Per-inode facts of a planned image, indexed by ext inode number, in
 * typed arrays. Filled by the walk (walk.ts), then by data placement.
 */
import { grow, trim } from "./arrays.ts";

/** flags bits. */
export const IF = {
  XATTR_IBODY: 0x1,
  HTREE: 0x2,
  SLOW_SYMLINK: 0x4,
  /** The synthesized /lost+found: no tree node behind it. */
  SYNTH_LPF: 0x8,
} as const;

export class InodeArrays {
  /** Highest ext inode number in use (every number 1..count is accounted for). */
  count = 0;
  /** Tree ino behind each ext inode (0 for reserved and synthesized ones). */
  treeIno: Float64Array;
  /** FT_* of the ext inode (tree "unknown" maps to FT.REG_FILE). */
  ft: Uint8Array;
  nlink: Uint32Array;
  /** Directories: the parent's ext inode ('..'). */
  parent: Uint32Array;
  /** Data blocks (file contents, directory blocks, slow symlink block). */
  nblocks: Uint32Array;
  /** First block of the data in the data area, logical (see geometry.ts). */
  dataL: Uint32Array;
  /** 1 + index of the shared xattr block, 0 for none. */
  xattrBlock: Uint32Array;
  flags: Uint8Array;

  constructor(capacity: number) {
    const n = Math.max(16, capacity + 1);
    this.treeIno = new Float64Array(n);
    this.ft = new Uint8Array(n);
    this.nlink = new Uint32Array(n);
    this.parent = new Uint32Array(n);
    this.nblocks = new Uint32Array(n);
    this.dataL = new Uint32Array(n);
    this.xattrBlock = new Uint32Array(n);
    this.flags = new Uint8Array(n);
  }

  /** Make room for inode numbers up to `ino`. */
  ensure(ino: number): void {
    if (ino < this.ft.length) return;
    const n = Math.max(ino + 1, this.ft.length * 2);
    this.treeIno = grow(this.treeIno, n);
    this.ft = grow(this.ft, n);
    this.nlink = grow(this.nlink, n);
    this.parent = grow(this.parent, n);
    this.nblocks = grow(this.nblocks, n);
    this.dataL = grow(this.dataL, n);
    this.xattrBlock = grow(this.xattrBlock, n);
    this.flags = grow(this.flags, n);
  }

  seal(): void {
    const n = this.count + 1;
    this.treeIno = trim(this.treeIno, n);
    this.ft = trim(this.ft, n);
    this.nlink = trim(this.nlink, n);
    this.parent = trim(this.parent, n);
    this.nblocks = trim(this.nblocks, n);
    this.dataL = trim(this.dataL, n);
    this.xattrBlock = trim(this.xattrBlock, n);
    this.flags = trim(this.flags, n);
  }
}

/**
 * Tree ino → ext ino. PuzzleFS numbers inodes densely from 1, so a typed
 * array covers the common case; anything beyond it goes to a Map.
 */
export class InoMap {
  private dense: Uint32Array;
  private readonly sparse = new Map<number, number>();

  constructor(expected: number) {
    this.dense = new Uint32Array(Math.max(16, expected * 2 + 16));
  }

  get(treeIno: number): number | undefined {
    if (Number.isInteger(treeIno) && treeIno >= 0 && treeIno < this.dense.length) {
      const v = this.dense[treeIno]!;
      return v === 0 ? undefined : v;
    }
    return this.sparse.get(treeIno);
  }

  set(treeIno: number, ext: number): void {
    if (Number.isInteger(treeIno) && treeIno >= 0 && treeIno < this.dense.length) this.dense[treeIno] = ext;
    else this.sparse.set(treeIno, ext);
  }
}
