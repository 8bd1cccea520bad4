/**
 * The merged, validated view of a PuzzleFS rootfs as a `Tree` (tree.ts).
 * Metadata stays in the rootfs message; `node()` materializes one TreeNode
 * on demand, and `readFile()` is the only path to chunk blobs (invariant
 * "lazy"). Reads locate their first chunk by binary search over the file's
 * prefix sums and load the chunks they touch in parallel through the shared
 * ChunkCache (invariant "verified").
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { MODE_TAG } from "../format/types.ts";
import type { NodeKind, Tree, TreeEntry, TreeNode, TreeXattr } from "../tree.ts";
import type { ChunkCache, LoadedChunk } from "./chunks.ts";
import { LayerStack, WHITEOUT } from "./layers.ts";
import { dirEntries, type TreeIndex } from "./walk.ts";

/** One readFile result is one buffer: keep it well below what a Uint8Array can hold. */
export const MAX_READ = 1 << 30;

const KIND: readonly NodeKind[] = ["unknown", "fifo", "chr", "dir", "blk", "file", "lnk", "sock"];

export class ImageTree implements Tree {
  readonly rootIno = 1;
  /** readFile calls so far (tests prove laziness with it). */
  readFileCalls = 0;

  constructor(
    readonly stack: LayerStack,
    readonly index: TreeIndex,
    readonly chunks: ChunkCache,
  ) {}

  get nodeCount(): number {
    return this.index.nodeCount;
  }

  /** Σ size of distinct reachable files. */
  get logicalBytes(): number {
    return this.index.logicalBytes;
  }

  private pos(ino: number): number {
    const pos = Number.isSafeInteger(ino) && ino >= 0 ? this.stack.find(ino) : -1;
    if (pos < 0 || !this.index.reachable[pos]) throw PfsError.notFound(`inode ${ino}`);
    return pos;
  }

  /** Kind of a reachable inode (cheaper than node()). */
  kind(ino: number): NodeKind {
    return KIND[this.stack.tag(this.pos(ino))]!;
  }

  node(ino: number): TreeNode {
    const pos = this.pos(ino);
    const v = this.stack.view;
    const msg = v.msg;
    msg.resetBudget();
    const s = this.stack.inode(pos);
    const tag = v.modeTag(s);
    const kind = KIND[tag]!;
    let major = 0;
    let minor = 0;
    if (tag === MODE_TAG.chr || tag === MODE_TAG.blk) {
      const d = v.device(s);
      major = Number(d.major);
      minor = Number(d.minor);
    }
    const xattrs: TreeXattr[] = [];
    let symlinkTarget: Uint8Array | null = null;
    const a = v.additional(s);
    if (a) {
      const xl = v.xattrList(a);
      for (let i = 0; xl && i < xl.count; i++) {
        const [key, value] = v.pair(msg.element(xl, i), "Xattr");
        xattrs.push({ key, value });
      }
      if (tag === MODE_TAG.lnk) symlinkTarget = v.symlinkTarget(a);
    }
    return {
      ino,
      kind,
      permissions: v.permissions(s) & 0o7777,
      uid: v.uid(s),
      gid: v.gid(s),
      size: this.index.sizes[pos]!,
      major,
      minor,
      xattrs,
      symlinkTarget: tag === MODE_TAG.lnk ? (symlinkTarget ?? new Uint8Array(0)) : null,
      entries: tag === MODE_TAG.dir ? this.entriesAt(pos) : null,
    };
  }

  private entriesAt(pos: number): TreeEntry[] {
    const out: TreeEntry[] = [];
    for (const e of dirEntries(this.stack, pos)) if (this.stack.find(e.ino) !== WHITEOUT) out.push(e);
    return out;
  }

  /** Directory entries (merged, whiteouts dropped) without building the rest of the node. */
  entries(ino: number): TreeEntry[] {
    const pos = this.pos(ino);
    if (this.stack.tag(pos) !== MODE_TAG.dir) throw new PfsError(ErrorCode.USAGE, `inode ${ino} is not a directory`);
    this.stack.view.msg.resetBudget();
    return this.entriesAt(pos);
  }

  /** Entry `name` of directory `ino`, or undefined (spec §2.4: exact byte match). */
  lookup(ino: number, name: Uint8Array): number | undefined {
    for (const e of this.entries(ino)) if (Buffer.compare(e.name, name) === 0) return e.ino;
    return undefined;
  }

  async readFile(ino: number, offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      this.readFileCalls++;
      throw PfsError.usage(`readFile(${ino}, ${offset}, ${length}): offset and length must be non-negative integers`);
    }
    const pos = this.filePos(ino);
    const end = Math.min(this.index.sizes[pos]!, offset + length);
    if (end - offset > MAX_READ) throw PfsError.limit(`readFile(${ino}, ${offset}, ${length})`, `one read returns at most ${MAX_READ} bytes; read in pieces`);
    const out = new Uint8Array(Math.max(0, end - offset));
    await this.readFileInto(ino, offset, out);
    return out;
  }

  private filePos(ino: number): number {
    const pos = this.pos(ino);
    if (this.stack.tag(pos) !== MODE_TAG.file) throw PfsError.usage(`inode ${ino} is not a regular file`);
    return pos;
  }

  /**
   * File bytes from `offset` into `dest` (readFile without the allocation):
   * chunks already in the cache are copied synchronously, the others are
   * loaded in parallel. Resolves with the bytes written.
   */
  async readFileInto(ino: number, offset: number, dest: Uint8Array): Promise<number> {
    this.readFileCalls++;
    if (!Number.isSafeInteger(offset) || offset < 0) throw PfsError.usage(`readFileInto(${ino}, ${offset}): offset must be a non-negative integer`);
    const pos = this.filePos(ino);
    const end = Math.min(this.index.sizes[pos]!, offset + dest.length);
    if (offset >= end) return 0;
    const v = this.stack.view;
    const msg = v.msg;
    msg.resetBudget();
    const list = v.fileChunks(this.stack.inode(pos))!;
    const ends = this.index.chunkEnds;
    const base = this.index.chunkBase[pos]!;
    // First chunk whose end lies beyond `offset`.
    let a = base;
    let b = base + list.count;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (ends[m]! <= offset) a = m + 1;
      else b = m;
    }
    let jobs: Promise<void>[] | undefined;
    // A failure found synchronously must still wait for the loads already started: none may write into dest later.
    let failure: { e: unknown } | undefined;
    try {
      for (let k = a; k < base + list.count; k++) {
        const cStart = k === base ? 0 : ends[k - 1]!;
        if (cStart >= end) break;
        const cEnd = ends[k]!;
        if (cEnd === cStart) continue;
        const blob = v.chunkBlob(msg.element(list, k - base));
        const hex = Buffer.from(blob.digest.buffer, blob.digest.byteOffset, 32).toString("hex");
        const from = Math.max(offset, cStart);
        const copy = { out: dest, outOff: from - offset, from, hex, blobOff: Number(blob.offset), chunkLen: cEnd - cStart, skip: from - cStart, n: Math.min(end, cEnd) - from, ino, k: k - base };
        const c = this.chunks.cached(hex, blob.compressed);
        if (c) {
          copyFrom(c, copy);
          continue;
        }
        (jobs ??= []).push(
          this.chunks.get(hex, blob.compressed).then(
            (loaded) => copyFrom(loaded, copy),
            (e: unknown) => Promise.reject(withFileOffset(e, from)),
          ),
        );
      }
    } catch (e) {
      failure = { e };
    }
    if (jobs) {
      const settled = await Promise.allSettled(jobs);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) failure ??= { e: failed.reason };
    }
    if (failure) throw failure.e;
    return end - offset;
  }

  /** The chunk blobs of a regular file, in file order (a blob used twice appears twice). */
  fileBlobs(ino: number): Array<{ hex: string; compressed: boolean }> {
    const pos = this.pos(ino);
    if (this.stack.tag(pos) !== MODE_TAG.file) throw PfsError.usage(`inode ${ino} is not a regular file`);
    const v = this.stack.view;
    v.msg.resetBudget();
    const list = v.fileChunks(this.stack.inode(pos));
    const out: Array<{ hex: string; compressed: boolean }> = [];
    for (let k = 0; list && k < list.count; k++) {
      const blob = v.chunkBlob(v.msg.element(list, k));
      out.push({ hex: Buffer.from(blob.digest.buffer, blob.digest.byteOffset, 32).toString("hex"), compressed: blob.compressed });
    }
    return out;
  }

  async prefetchFile(ino: number, offset: number, length: number): Promise<void> {
    await this.readFile(ino, offset, length);
  }
}

/** Tell callers (ext/nbd) where in the file the first bad byte of a chunk is. */
function withFileOffset(e: unknown, from: number): unknown {
  if (e instanceof PfsError && e.data.fileOffset === undefined) e.data.fileOffset = from;
  return e;
}

interface ChunkCopy {
  out: Uint8Array;
  outOff: number;
  /** File offset of the first byte copied (errors report it as data.fileOffset). */
  from: number;
  hex: string;
  /** Where the chunk starts in the blob's (uncompressed) bytes, and its length. */
  blobOff: number;
  chunkLen: number;
  /** Chunk bytes [skip, skip + n) are wanted. */
  skip: number;
  n: number;
  ino: number;
  k: number;
}

function copyFrom(c: LoadedChunk, x: ChunkCopy): void {
  try {
    if (x.blobOff + x.chunkLen > c.size) {
      throw PfsError.format(`file inode ${x.ino} chunk ${x.k}`, `bytes [${x.blobOff}, ${x.blobOff + x.chunkLen}) lie beyond the end of blob sha256:${x.hex}`, {
        expected: `≤ ${c.size}`,
        got: x.blobOff + x.chunkLen,
      });
    }
    c.readInto(x.blobOff + x.skip, x.out.subarray(x.outOff, x.outOff + x.n));
  } catch (e) {
    throw withFileOffset(e, x.from);
  }
}
