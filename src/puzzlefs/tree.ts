/**
 * The merged view of a PuzzleFS image that `ext/` (and `extract`, `ls`, `cat`)
 * consume: one tree, layers already merged and whiteouts already removed.
 * `ext/` sees only this interface, so it can be tested on trees built in
 * memory and stays lazy: `node()` returns metadata, `readFile()` is the only
 * way to reach file data.
 */
import { PfsError } from "../common/errors.ts";

export type NodeKind = "file" | "dir" | "lnk" | "chr" | "blk" | "fifo" | "sock" | "unknown";

export interface TreeXattr {
  key: Uint8Array;
  value: Uint8Array;
}

export interface TreeEntry {
  /** Raw name bytes, 1–255 bytes for anything ext can hold. */
  name: Uint8Array;
  ino: number;
}

export interface TreeNode {
  /** PuzzleFS inode number; unique in the tree. Hard links share one node. */
  readonly ino: number;
  readonly kind: NodeKind;
  /** st_mode & 0o7777. */
  readonly permissions: number;
  readonly uid: number;
  readonly gid: number;
  /** Files: Σ chunk len. Symlinks: target length. Everything else: 0. */
  readonly size: number;
  /** chr/blk device numbers, else 0. */
  readonly major: number;
  readonly minor: number;
  /** In image order. */
  readonly xattrs: readonly TreeXattr[];
  /** lnk only. */
  readonly symlinkTarget: Uint8Array | null;
  /** dir only: the merged entries in image order, no '.'/'..', no whiteouts. */
  readonly entries: readonly TreeEntry[] | null;
}

export interface Tree {
  /** Always 1 for PuzzleFS. */
  readonly rootIno: number;
  /** Number of distinct nodes reachable from the root. */
  readonly nodeCount: number;
  /** Throws PfsError NOT_FOUND for an ino that is not in the tree. */
  node(ino: number): TreeNode;
  /**
   * File bytes [offset, min(offset+length, size)). Only this touches chunk
   * blobs; rejects with PfsError DIGEST when a chunk fails verification.
   */
  readFile(ino: number, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional fast path with readFile's contract: the file bytes from `offset`
   * into `dest` (no allocation, one copy); resolves with how many were
   * written, min(dest.length, size - offset). Bytes past that are untouched.
   */
  readFileInto?(ino: number, offset: number, dest: Uint8Array): Promise<number>;
  /** Optional: warm the chunk cache for a later readFile. */
  prefetchFile?(ino: number, offset: number, length: number): Promise<void>;
}

/** A node description for MemoryTree; defaults fill what is omitted. */
export interface MemoryNodeInit {
  kind: NodeKind;
  permissions?: number;
  uid?: number;
  gid?: number;
  major?: number;
  minor?: number;
  xattrs?: TreeXattr[];
  symlinkTarget?: Uint8Array | string;
  /** dir: children by name (strings are UTF-8 encoded). */
  entries?: Array<{ name: Uint8Array | string; ino: number }>;
  /** file: its content, or a generator of its bytes (for huge files). */
  data?: Uint8Array | string | { size: number; read(offset: number, length: number): Uint8Array };
}

const enc = new TextEncoder();
const bytes = (v: Uint8Array | string): Uint8Array => (typeof v === "string" ? enc.encode(v) : v);

/**
 * A Tree held in memory, for tests and for library users who synthesize disks
 * from something other than a PuzzleFS image. Counts readFile calls so tests
 * can prove laziness.
 */
export class MemoryTree implements Tree {
  readonly rootIno = 1;
  readFileCalls = 0;
  private readonly nodes = new Map<number, TreeNode>();
  private readonly data = new Map<number, Uint8Array | { size: number; read(offset: number, length: number): Uint8Array }>();

  constructor(init: Record<number, MemoryNodeInit>) {
    for (const [k, n] of Object.entries(init)) {
      const ino = Number(k);
      const target = n.symlinkTarget === undefined ? null : bytes(n.symlinkTarget);
      const d = n.data;
      const size =
        n.kind === "file"
          ? d === undefined ? 0 : typeof d === "string" ? enc.encode(d).length : d instanceof Uint8Array ? d.length : d.size
          : n.kind === "lnk" ? (target?.length ?? 0) : 0;
      if (d !== undefined) this.data.set(ino, typeof d === "string" ? enc.encode(d) : d);
      this.nodes.set(ino, {
        ino,
        kind: n.kind,
        permissions: n.permissions ?? (n.kind === "dir" ? 0o755 : n.kind === "lnk" ? 0o777 : 0o644),
        uid: n.uid ?? 0,
        gid: n.gid ?? 0,
        size,
        major: n.major ?? 0,
        minor: n.minor ?? 0,
        xattrs: n.xattrs ?? [],
        symlinkTarget: n.kind === "lnk" ? (target ?? new Uint8Array()) : null,
        entries: n.kind === "dir" ? (n.entries ?? []).map((e) => ({ name: bytes(e.name), ino: e.ino })) : null,
      });
    }
    if (!this.nodes.has(1) || this.nodes.get(1)!.kind !== "dir") throw PfsError.usage("MemoryTree: inode 1 must be a directory");
  }

  get nodeCount(): number {
    return this.nodes.size;
  }

  node(ino: number): TreeNode {
    const n = this.nodes.get(ino);
    if (!n) throw PfsError.notFound(`inode ${ino}`);
    return n;
  }

  async readFile(ino: number, offset: number, length: number): Promise<Uint8Array> {
    this.readFileCalls++;
    const n = this.node(ino);
    if (n.kind !== "file") throw PfsError.usage(`inode ${ino} is not a regular file`);
    const end = Math.min(n.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    const d = this.data.get(ino)!;
    if (d instanceof Uint8Array) return d.subarray(offset, end);
    return d.read(offset, end - offset);
  }
}
