/**
 * Byte-exact rootfs encoder (spec §2.5).
 *
 * Upstream serializes the rootfs with capnp-rust's `message::Builder::new_default()`,
 * so the bytes (and hence the rootfs digest that names the blob) depend on that
 * library's allocator: where each object lands, when a new segment is opened,
 * and when a pointer becomes a far pointer. This module emulates it exactly:
 *
 *   segments   segment 0 is created for the root pointer with capacity
 *              max(1, next), next = 1024 words; each new segment of capacity s
 *              adds s to next (capped at 2^29). A later segment is created with
 *              capacity max(n + 1, next) when no existing one has room.
 *   allocate   n words for a pointer living in segment H: from H's end if it
 *              has n free words; else from the first segment (0, 1, …) with
 *              n + 1 free words, the first of which is a landing pad, and the
 *              pointer becomes a far pointer to that pad.
 *   order      objects are allocated in the order upstream's `fill_capnp`
 *              creates them (the sequence in `encodeRootfs` below).
 *
 * Standard stream framing: u32 segmentCount-1, u32 word count per segment,
 * padding to 8 bytes, then each segment's used words.
 */
import { PfsError } from "../../common/errors.ts";
import type { Inode, InodeMode, Rootfs } from "./types.ts";
import { MODE_TAG } from "./types.ts";

const FIRST_SEGMENT_WORDS = 1024;
const MAX_SEGMENT_WORDS = 2 ** 29;

/** Pointer kinds (low 2 bits of a pointer word). */
const KIND = { STRUCT: 0, LIST: 1, FAR: 2 } as const;
/** List element sizes (bits 32–34 of a list pointer). */
const ELEM = { BYTE: 2, COMPOSITE: 7 } as const;

/** Struct sizes in (data words, pointer words), spec §2.2. */
const SIZE = {
  rootfs: [1, 2],
  inodeVector: [0, 1],
  inode: [3, 2],
  chr: [2, 0],
  dir: [1, 1],
  dirEntry: [1, 1],
  fileChunk: [1, 1],
  blobRef: [2, 1],
  additional: [0, 2],
  xattr: [0, 2],
  verityData: [0, 2],
} as const satisfies Record<string, readonly [number, number]>;

class Segment {
  /** Words in use; the only ones written out. */
  used = 0;
  buf: Uint8Array;
  dv: DataView;

  constructor(
    readonly id: number,
    /** Capacity in words as capnp-rust sized it; memory grows lazily up to it. */
    readonly capacity: number,
  ) {
    this.buf = new Uint8Array(8 * Math.min(capacity, 1024));
    this.dv = new DataView(this.buf.buffer);
  }

  /** Take n words from the end; grows the backing memory by doubling. */
  take(n: number): number {
    const at = this.used;
    this.used += n;
    const need = this.used * 8;
    if (need > this.buf.length) {
      let len = this.buf.length;
      while (len < need) len *= 2;
      const next = new Uint8Array(Math.min(len, this.capacity * 8));
      next.set(this.buf);
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    return at;
  }

  setWord(idx: number, lo: number, hi: number): void {
    this.dv.setUint32(idx * 8, lo >>> 0, true);
    this.dv.setUint32(idx * 8 + 4, hi >>> 0, true);
  }

  setU64(byteOff: number, v: bigint): void {
    this.dv.setBigUint64(byteOff, BigInt.asUintN(64, v), true);
  }
}

/** A place where an object lives: its segment and first word. */
interface Loc {
  seg: Segment;
  idx: number;
}

class Arena {
  readonly segments: Segment[] = [];
  private nextSize = FIRST_SEGMENT_WORDS;

  private newSegment(minimum: number): Segment {
    if (minimum > MAX_SEGMENT_WORDS) throw PfsError.limit("rootfs object", `${MAX_SEGMENT_WORDS} words per segment`);
    const size = Math.max(minimum, this.nextSize);
    // capnp-rust's GrowHeuristically strategy.
    this.nextSize = size < MAX_SEGMENT_WORDS - this.nextSize ? this.nextSize + size : MAX_SEGMENT_WORDS;
    const s = new Segment(this.segments.length, size);
    this.segments.push(s);
    return s;
  }

  /** The root pointer: segment 0, word 0. */
  root(): Loc {
    const seg = this.newSegment(1);
    return { seg, idx: seg.take(1) };
  }

  /**
   * Allocate n words for the pointer at `ptr` and write that pointer: `kind`
   * and `hi` (the upper 32 bits: struct sizes or list element size/count).
   */
  alloc(ptr: Loc, n: number, kind: number, hi: number): Loc {
    const home = ptr.seg;
    // n = 0 always fits (used ≤ capacity), as in capnp-rust.
    if (n <= home.capacity - home.used) {
      const idx = home.take(n);
      home.setWord(ptr.idx, (kind | ((idx - ptr.idx - 1) << 2)) >>> 0, hi);
      return { seg: home, idx };
    }
    let seg = this.segments.find((s) => s.capacity - s.used >= n + 1);
    seg ??= this.newSegment(n + 1);
    const pad = seg.take(n + 1);
    // Landing pad: same pointer, offset 0 (the object follows immediately).
    seg.setWord(pad, kind, hi);
    home.setWord(ptr.idx, (KIND.FAR | (pad << 3)) >>> 0, seg.id);
    return { seg, idx: pad + 1 };
  }

  struct(ptr: Loc, size: readonly [number, number]): Loc {
    return this.alloc(ptr, size[0] + size[1], KIND.STRUCT, size[0] | (size[1] << 16));
  }

  /** A composite list of `count` structs; returns the location of element 0. */
  structList(ptr: Loc, count: number, size: readonly [number, number]): Loc {
    const words = count * (size[0] + size[1]);
    if (words >= MAX_SEGMENT_WORDS) throw PfsError.limit(`rootfs list of ${count} elements`, "2^29 words");
    const at = this.alloc(ptr, 1 + words, KIND.LIST, (ELEM.COMPOSITE | (words << 3)) >>> 0);
    // Tag word: a struct pointer whose offset field holds the element count.
    at.seg.setWord(at.idx, (count << 2) >>> 0, size[0] | (size[1] << 16));
    return { seg: at.seg, idx: at.idx + 1 };
  }

  data(ptr: Loc, bytes: Uint8Array): void {
    if (bytes.length >= MAX_SEGMENT_WORDS) throw PfsError.limit(`rootfs Data of ${bytes.length} bytes`, "2^29 bytes");
    const at = this.alloc(ptr, Math.ceil(bytes.length / 8), KIND.LIST, (ELEM.BYTE | (bytes.length << 3)) >>> 0);
    at.seg.buf.set(bytes, at.idx * 8);
  }

  /** Serialize with standard stream framing. */
  frame(): Uint8Array {
    const segs = this.segments;
    const header = 4 * (segs.length + 1) + (segs.length % 2 === 0 ? 4 : 0);
    let total = header;
    for (const s of segs) total += s.used * 8;
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, segs.length - 1, true);
    segs.forEach((s, i) => dv.setUint32(4 + 4 * i, s.used, true));
    let off = header;
    for (const s of segs) {
      out.set(s.buf.subarray(0, s.used * 8), off);
      off += s.used * 8;
    }
    return out;
  }
}

/** Word `w`'s pointer slot `p` of a struct at `at` with `dataWords` data words. */
const ptrAt = (at: Loc, dataWords: number, p: number): Loc => ({ seg: at.seg, idx: at.idx + dataWords + p });
const elem = (first: Loc, size: readonly [number, number], i: number): Loc => ({
  seg: first.seg,
  idx: first.idx + i * (size[0] + size[1]),
});

function u32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw PfsError.usage(`${what}: ${v} is not a u32`);
  return v;
}

function encodeMode(a: Arena, inode: Loc, mode: InodeMode): void {
  const p0 = ptrAt(inode, SIZE.inode[0], 0);
  switch (mode.kind) {
    case "chr":
    case "blk": {
      const s = a.struct(p0, SIZE.chr);
      s.seg.setU64(s.idx * 8, mode.major);
      s.seg.setU64(s.idx * 8 + 8, mode.minor);
      return;
    }
    case "dir": {
      const d = a.struct(p0, SIZE.dir);
      if (mode.lookBelow) d.seg.buf[d.idx * 8]! |= 1;
      const first = a.structList(ptrAt(d, SIZE.dir[0], 0), mode.entries.length, SIZE.dirEntry);
      mode.entries.forEach((e, i) => {
        const at = elem(first, SIZE.dirEntry, i);
        at.seg.setU64(at.idx * 8, e.ino);
        a.data(ptrAt(at, SIZE.dirEntry[0], 0), e.name);
      });
      return;
    }
    case "file": {
      const first = a.structList(p0, mode.chunks.length, SIZE.fileChunk);
      mode.chunks.forEach((c, i) => {
        const at = elem(first, SIZE.fileChunk, i);
        at.seg.setU64(at.idx * 8, c.len);
        const b = a.struct(ptrAt(at, SIZE.fileChunk[0], 0), SIZE.blobRef);
        b.seg.setU64(b.idx * 8, c.blob.offset);
        if (c.blob.compressed) b.seg.buf[b.idx * 8 + 8]! |= 1;
        a.data(ptrAt(b, SIZE.blobRef[0], 0), c.blob.digest);
      });
      return;
    }
    default:
      return; // Void members carry only the tag.
  }
}

function encodeInode(a: Arena, at: Loc, n: Inode): void {
  const { seg, idx } = at;
  seg.setU64(idx * 8, n.ino);
  seg.dv.setUint16(idx * 8 + 8, MODE_TAG[n.mode.kind], true);
  if (!Number.isInteger(n.permissions) || n.permissions < 0 || n.permissions > 0xffff) {
    throw PfsError.usage(`inode ${n.ino}: permissions ${n.permissions} is not a u16`);
  }
  seg.dv.setUint16(idx * 8 + 10, n.permissions, true);
  seg.dv.setUint32(idx * 8 + 12, u32(n.uid, `inode ${n.ino} uid`), true);
  seg.dv.setUint32(idx * 8 + 16, u32(n.gid, `inode ${n.ino} gid`), true);
  encodeMode(a, at, n.mode);
  if (n.additional) {
    const add = a.struct(ptrAt(at, SIZE.inode[0], 1), SIZE.additional);
    const xs = n.additional.xattrs;
    const first = a.structList(ptrAt(add, 0, 0), xs.length, SIZE.xattr);
    xs.forEach((x, i) => {
      const xa = elem(first, SIZE.xattr, i);
      // Upstream sets the value before the key.
      a.data(ptrAt(xa, 0, 1), x.val);
      a.data(ptrAt(xa, 0, 0), x.key);
    });
    if (n.additional.symlinkTarget) a.data(ptrAt(add, 0, 1), n.additional.symlinkTarget);
  }
}

/** Encode a Rootfs exactly as upstream puzzlefs (capnp-rust 0.19) would. */
export function encodeRootfs(r: Rootfs): Uint8Array {
  const a = new Arena();
  const root = a.struct(a.root(), SIZE.rootfs);
  root.seg.setU64(root.idx * 8, r.manifestVersion);
  const layers = a.structList(ptrAt(root, 1, 0), r.metadatas.length, SIZE.inodeVector);
  r.metadatas.forEach((layer, li) => {
    const v = elem(layers, SIZE.inodeVector, li);
    const first = a.structList(ptrAt(v, 0, 0), layer.inodes.length, SIZE.inode);
    layer.inodes.forEach((n, i) => encodeInode(a, elem(first, SIZE.inode, i), n));
  });
  const vs = a.structList(ptrAt(root, 1, 1), r.fsVerityData.length, SIZE.verityData);
  r.fsVerityData.forEach((v, i) => {
    const at = elem(vs, SIZE.verityData, i);
    a.data(ptrAt(at, 0, 0), v.digest);
    a.data(ptrAt(at, 0, 1), v.verity);
  });
  return a.frame();
}
