/**
 * Load-time validation of the merged tree, and the compact index the reader
 * keeps afterwards. One iterative depth-first walk from inode 1 checks what
 * a hostile image could get wrong (spec §2.3 and the bad-input list):
 * entries naming an inode no layer has, names that are empty, `.`, `..`, or
 * contain `/` or NUL, duplicate names, a directory reachable twice (cycles
 * included), absurd directory depth, impossible sizes, chunks that leave an
 * uncompressed blob whose size the manifest tells. Whiteout entries are
 * dropped from listings (spec §2.3: they resolve to ENOENT).
 *
 * What survives: per position (layers.ts) one byte "reachable", the file or
 * symlink size, and for files the index of their chunk prefix sums, so a read
 * finds its first chunk by binary search.
 */
import { PfsError } from "../../common/errors.ts";
import { MODE_TAG } from "../format/types.ts";
import { LayerStack, NOT_FOUND, WHITEOUT } from "./layers.ts";

export const DEFAULT_MAX_DEPTH = 4096;

export interface RawEntry {
  name: Uint8Array;
  ino: number;
}

export interface WalkOptions {
  /** Directory nesting limit (LIMIT beyond). */
  maxDepth?: number;
  /** Stored sizes of blobs the manifest lists (hex → bytes): uncompressed chunks are checked against them. */
  blobSizes?: ReadonlyMap<string, number>;
}

export interface TreeIndex {
  /** 1 for positions reachable from the root. */
  reachable: Uint8Array;
  /** File: Σ chunk len; symlink: target length; else 0. */
  sizes: Float64Array;
  /** Files: index into chunkEnds of their first chunk. */
  chunkBase: Uint32Array;
  /** Cumulative end offset (within its file) of each chunk. */
  chunkEnds: Float64Array;
  nodeCount: number;
  /** Σ size over distinct reachable files. */
  logicalBytes: number;
}

const TAG_NAMES = ["unknown", "fifo", "chr", "dir", "blk", "file", "lnk", "sock", "wht"] as const;

export function kindName(tag: number): string {
  return TAG_NAMES[tag] ?? `unknown tag ${tag}`;
}

/** Printable form of a raw name for messages (JSON-escaped latin1 fallback for non-UTF-8). */
export function showName(name: Uint8Array): string {
  try {
    return JSON.stringify(new TextDecoder("utf-8", { fatal: true }).decode(name));
  } catch {
    return JSON.stringify(Buffer.from(name).toString("latin1"));
  }
}

/**
 * The entries a directory inode lists, whiteouts included, in image order.
 * With `lookBelow` (never written by upstream, ignored by its reader) the
 * same inode's directory in the next lower layer contributes the names the
 * upper list does not have, after the upper ones.
 */
export function dirEntries(stack: LayerStack, pos: number): RawEntry[] {
  const v = stack.view;
  const msg = v.msg;
  const s = stack.inode(pos);
  const d = v.dir(s);
  const out: RawEntry[] = [];
  for (let i = 0; d.entries && i < d.entries.count; i++) {
    const e = msg.element(d.entries, i);
    const ino = msg.u64n(e, 0);
    if (ino < 0) throw PfsError.format(`${v.name} directory inode ${v.ino(s)}`, `entry ${i} has inode number ${msg.u64(e, 0)}, beyond 2^53`, { offset: e.data });
    out.push({ name: v.dirEntryName(e), ino });
  }
  if (d.lookBelow) {
    const below = stack.find(v.inoNum(s), stack.layerOf(pos) + 1);
    if (below >= 0 && stack.tag(below) === MODE_TAG.dir) {
      const have = new Set(out.map((e) => Buffer.from(e.name).toString("latin1")));
      for (const e of dirEntries(stack, below)) if (!have.has(Buffer.from(e.name).toString("latin1"))) out.push(e);
    }
  }
  return out;
}

function checkName(name: Uint8Array, where: () => string): void {
  let bad = "";
  if (name.length === 0) bad = "is empty";
  else if (name.length === 1 && name[0] === 0x2e) bad = 'is "."';
  else if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) bad = 'is ".."';
  else if (name.includes(0x2f)) bad = 'contains "/"';
  else if (name.includes(0)) bad = "contains a NUL byte";
  if (bad) throw PfsError.format(where(), `entry name ${showName(name)} ${bad}`);
}

export function buildTreeIndex(stack: LayerStack, opts: WalkOptions = {}): TreeIndex {
  const v = stack.view;
  const msg = v.msg;
  const total = stack.total;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const reachable = new Uint8Array(total);
  const sizes = new Float64Array(total);
  const chunkBase = new Uint32Array(total);
  const ends: number[] = [];
  let nodeCount = 1;
  let logicalBytes = 0;

  const root = stack.find(1);
  if (root === NOT_FOUND) throw PfsError.format(v.name, "no layer has the root inode 1");
  if (root === WHITEOUT) throw PfsError.format(v.name, "the root inode 1 is a whiteout");
  if (stack.tag(root) !== MODE_TAG.dir) throw PfsError.format(v.name, `the root inode 1 is a ${kindName(stack.tag(root))}, not a directory`);
  reachable[root] = 1;

  const visitFile = (pos: number, ino: number): void => {
    const s = stack.inode(pos);
    const l = v.fileChunks(s);
    chunkBase[pos] = ends.length;
    let size = 0;
    for (let i = 0; l && i < l.count; i++) {
      const c = msg.element(l, i);
      const what = () => `${v.name} file inode ${ino} chunk ${i}`;
      const len = msg.u64n(c, 0);
      const b = v.chunkBlob(c);
      const off = b.ref ? msg.u64n(b.ref, 0) : 0;
      if (len < 0 || off < 0) throw PfsError.format(what(), "offset or length beyond 2^53", { offset: c.data });
      if (b.digest.length !== 32) throw PfsError.format(what(), "blob digest is not 32 bytes", { offset: c.data, expected: 32, got: b.digest.length });
      if (!b.compressed && opts.blobSizes) {
        const hex = Buffer.from(b.digest.buffer, b.digest.byteOffset, 32).toString("hex");
        const bs = opts.blobSizes.get(hex);
        if (bs !== undefined && off + len > bs) {
          throw PfsError.format(what(), `bytes [${off}, ${off + len}) lie beyond the end of blob sha256:${hex}`, { offset: c.data, expected: `≤ ${bs}`, got: off + len });
        }
      }
      size += len;
      if (size > Number.MAX_SAFE_INTEGER) throw PfsError.format(what(), "file size beyond 2^53");
      ends.push(size);
    }
    sizes[pos] = size;
    logicalBytes += size;
  };

  const visitOther = (pos: number, tag: number, ino: number): void => {
    const s = stack.inode(pos);
    if (tag === MODE_TAG.file) return visitFile(pos, ino);
    if (tag === MODE_TAG.lnk) {
      const a = v.additional(s);
      const target = a ? v.symlinkTarget(a) : null;
      if (!target) throw PfsError.format(`${v.name} symlink inode ${ino}`, "has no target (additional.symlinkTarget)", { offset: s.data });
      sizes[pos] = target.length;
    } else if (tag === MODE_TAG.chr || tag === MODE_TAG.blk) {
      const d = v.device(s);
      if (d.major > 0xffffffffn || d.minor > 0xffffffffn) {
        throw PfsError.format(`${v.name} device inode ${ino}`, `device number ${d.major}:${d.minor} does not fit 32 bits`, { offset: s.data });
      }
    } else if (tag > MODE_TAG.wht) {
      throw PfsError.format(`${v.name} inode ${ino}`, "unknown mode union tag", { offset: s.data + 8, expected: "0..8", got: tag });
    }
  };

  const stack_: number[] = [root];
  const depth: number[] = [0];
  while (stack_.length > 0) {
    const dpos = stack_.pop()!;
    const dd = depth.pop()!;
    const dino = v.inoNum(stack.inode(dpos));
    const where = () => `${v.name} directory inode ${dino}`;
    const seen = new Set<string>();
    for (const e of dirEntries(stack, dpos)) {
      checkName(e.name, where);
      const key = Buffer.from(e.name).toString("latin1");
      if (seen.has(key)) throw PfsError.format(where(), `entry name ${showName(e.name)} appears twice`);
      seen.add(key);
      const pos = stack.find(e.ino);
      if (pos === WHITEOUT) continue;
      if (pos === NOT_FOUND) throw PfsError.format(where(), `entry ${showName(e.name)} points at inode ${e.ino}, which no layer has`);
      const tag = stack.tag(pos);
      if (tag === MODE_TAG.dir) {
        if (reachable[pos]) {
          throw PfsError.format(where(), `entry ${showName(e.name)} reaches directory inode ${e.ino} a second time (a cycle or a directory hard link)`);
        }
        if (dd + 1 > maxDepth) throw PfsError.limit(`${where()} entry ${showName(e.name)}`, `directory nesting deeper than ${maxDepth}`);
        reachable[pos] = 1;
        nodeCount++;
        stack_.push(pos);
        depth.push(dd + 1);
      } else if (!reachable[pos]) {
        reachable[pos] = 1;
        nodeCount++;
        visitOther(pos, tag, e.ino);
      }
    }
  }
  return { reachable, sizes, chunkBase, chunkEnds: Float64Array.from(ends), nodeCount, logicalBytes };
}
