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
import type { ChunkCache } from "./chunks.ts";
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
    this.readFileCalls++;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw PfsError.usage(`readFile(${ino}, ${offset}, ${length}): offset and length must be non-negative integers`);
    }
    const pos = this.pos(ino);
    if (this.stack.tag(pos) !== MODE_TAG.file) throw PfsError.usage(`inode ${ino} is not a regular file`);
    const size = this.index.sizes[pos]!;
    const end = Math.min(size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    if (end - offset > MAX_READ) throw PfsError.limit(`readFile(${ino}, ${offset}, ${length})`, `one read returns at most ${MAX_READ} bytes; read in pieces`);
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
    const out = new Uint8Array(end - offset);
    const jobs: Promise<void>[] = [];
    for (let k = a; k < base + list.count; k++) {
      const cStart = k === base ? 0 : ends[k - 1]!;
      if (cStart >= end) break;
      const cEnd = ends[k]!;
      if (cEnd === cStart) continue;
      const c = msg.element(list, k - base);
      const blob = v.chunkBlob(c);
      const hex = Buffer.from(blob.digest.buffer, blob.digest.byteOffset, 32).toString("hex");
      const blobOff = Number(blob.offset);
      const from = Math.max(offset, cStart);
      const to = Math.min(end, cEnd);
      jobs.push(
        this.copyChunk(out, from - offset, hex, blob.compressed, blobOff, cEnd - cStart, from - cStart, to - from, ino, k - base).catch((e: unknown) => {
          // Tell callers (ext/nbd) where in the file the first bad byte of this chunk is.
          if (e instanceof PfsError && e.data.fileOffset === undefined) e.data.fileOffset = from;
          throw e;
        }),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  private async copyChunk(
    out: Uint8Array,
    outOff: number,
    hex: string,
    compressed: boolean,
    blobOff: number,
    chunkLen: number,
    skip: number,
    n: number,
    ino: number,
    k: number,
  ): Promise<void> {
    const c = await this.chunks.get(hex, compressed);
    if (blobOff + chunkLen > c.size) {
      throw PfsError.format(`file inode ${ino} chunk ${k}`, `bytes [${blobOff}, ${blobOff + chunkLen}) lie beyond the end of blob sha256:${hex}`, {
        expected: `≤ ${c.size}`,
        got: blobOff + chunkLen,
      });
    }
    out.set(c.read(blobOff + skip, n), outOff);
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
