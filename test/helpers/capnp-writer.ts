/**
 * TEST-ONLY Cap'n Proto writer for the rootfs schema that scatters objects
 * over many segments and reaches them through near, far (single landing
 * pad) and double-far pointers at random, and can pad structs to larger
 * sizes (as a newer schema would). It exists to feed the decoder every valid
 * framing; capnp-es and `capnp convert` judge the result. It is not the
 * builder's encoder (that one must be byte-exact, spec §2.5; this one is not).
 */
import type { Inode, Rootfs } from "../../src/puzzlefs/format/types.ts";
import { MODE_TAG } from "../../src/puzzlefs/format/types.ts";

export interface WriterOptions {
  seed: number;
  /** Probability that an object goes to another segment through a far pointer. */
  far?: number;
  /** Of those, the probability of a double-far pointer. */
  doubleFar?: number;
  /** Max words per segment (small values force many segments). */
  segmentWords?: number;
  /** Extra data words / pointers added to every struct (schema evolution). */
  extraData?: number;
  extraPtrs?: number;
}

type Ptr =
  | { kind: "struct"; dw: number; pc: number }
  | { kind: "list"; elemSize: number; count: number; /* words of content */ words: number };

export function rng(seed: number): () => number {
  let x = Math.imul(seed + 1, 0x9e3779b1) >>> 0 || 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
  for (let i = 0; i < 8; i++) next(); // small seeds start with tiny values: warm up
  return next;
}

class Seg {
  buf: DataView;
  used = 0;
  constructor(readonly cap: number) {
    this.buf = new DataView(new ArrayBuffer(cap * 8));
  }
}

export class ScatterWriter {
  private segs: Seg[] = [];
  /** How many pointers of each form were written (tests check every form occurs). */
  readonly stats = { near: 0, far: 0, doubleFar: 0 };
  private r: () => number;
  private o: Required<WriterOptions>;

  constructor(opts: WriterOptions) {
    this.o = { far: 0.3, doubleFar: 0.3, segmentWords: 64, extraData: 0, extraPtrs: 0, ...opts };
    this.r = rng(opts.seed);
    this.segs.push(new Seg(Math.max(1, this.o.segmentWords)));
    this.segs[0]!.used = 1; // root pointer
  }

  private alloc(words: number, avoid = -1): [number, number] {
    for (let tries = 0; tries < 4; tries++) {
      const i = Math.floor(this.r() * this.segs.length);
      const s = this.segs[i]!;
      if (i !== avoid && s.cap - s.used >= words) {
        s.used += words;
        return [i, s.used - words];
      }
    }
    this.segs.push(new Seg(Math.max(words, this.o.segmentWords)));
    const i = this.segs.length - 1;
    this.segs[i]!.used = words;
    return [i, 0];
  }

  private hiWord(p: Ptr): number {
    return p.kind === "struct" ? (p.dw | (p.pc << 16)) >>> 0 : (p.elemSize | (p.words << 3)) >>> 0;
  }

  /** Place an object of `words` for the pointer slot (seg, word); returns where the object lives. */
  place(seg: number, word: number, p: Ptr, words: number): [number, number] {
    const kind = p.kind === "struct" ? 0 : 1;
    const hi = this.hiWord(p);
    const home = this.segs[seg]!;
    const wantFar = this.r() < this.o.far || home.cap - home.used < words;
    const dv = home.buf;
    if (!wantFar) {
      this.stats.near++;
      const at = home.used;
      home.used += words;
      dv.setInt32(word * 8, ((at - word - 1) << 2) | kind, true);
      dv.setUint32(word * 8 + 4, hi, true);
      return [seg, at];
    }
    if (this.r() < this.o.doubleFar) {
      this.stats.doubleFar++;
      const [os, ow] = this.alloc(words);
      const [ps, pw] = this.alloc(2);
      const pad = this.segs[ps]!.buf;
      pad.setUint32(pw * 8, ((ow << 3) | 2) >>> 0, true);
      pad.setUint32(pw * 8 + 4, os, true);
      pad.setUint32(pw * 8 + 8, kind, true);
      pad.setUint32(pw * 8 + 12, hi, true);
      dv.setUint32(word * 8, ((pw << 3) | 4 | 2) >>> 0, true);
      dv.setUint32(word * 8 + 4, ps, true);
      return [os, ow];
    }
    this.stats.far++;
    const [os, ow] = this.alloc(words + 1);
    const pad = this.segs[os]!.buf;
    pad.setUint32(ow * 8, kind, true); // offset 0: object follows the pad
    pad.setUint32(ow * 8 + 4, hi, true);
    dv.setUint32(word * 8, ((ow << 3) | 2) >>> 0, true);
    dv.setUint32(word * 8 + 4, os, true);
    return [os, ow + 1];
  }

  dataAt(seg: number, word: number, bytes: Uint8Array | null): void {
    if (bytes === null) return;
    const words = Math.ceil(bytes.length / 8);
    const [s, w] = this.place(seg, word, { kind: "list", elemSize: 2, count: bytes.length, words: bytes.length }, words);
    new Uint8Array(this.segs[s]!.buf.buffer).set(bytes, w * 8);
  }

  /** A struct for slot (seg, word); returns [seg, dataWord, ptrWord]. */
  structAt(seg: number, word: number, dw: number, pc: number): [number, number, number] {
    const d = dw + this.o.extraData;
    const p = pc + this.o.extraPtrs;
    const [s, w] = this.place(seg, word, { kind: "struct", dw: d, pc: p }, d + p);
    return [s, w, w + d];
  }

  /** A composite list; returns element positions [seg, dataWord, ptrWord]. */
  listAt(seg: number, word: number, count: number, dw: number, pc: number): Array<[number, number, number]> {
    const d = dw + this.o.extraData;
    const p = pc + this.o.extraPtrs;
    const words = count * (d + p);
    const [s, w] = this.place(seg, word, { kind: "list", elemSize: 7, count, words }, words + 1);
    const dv = this.segs[s]!.buf;
    dv.setUint32(w * 8, (count << 2) >>> 0, true);
    dv.setUint32(w * 8 + 4, (d | (p << 16)) >>> 0, true);
    return Array.from({ length: count }, (_, i) => [s, w + 1 + i * (d + p), w + 1 + i * (d + p) + d]);
  }

  u64(seg: number, word: number, byteOff: number, v: bigint): void {
    this.segs[seg]!.buf.setBigUint64(word * 8 + byteOff, v, true);
  }
  u32(seg: number, word: number, byteOff: number, v: number): void {
    this.segs[seg]!.buf.setUint32(word * 8 + byteOff, v, true);
  }
  u16(seg: number, word: number, byteOff: number, v: number): void {
    this.segs[seg]!.buf.setUint16(word * 8 + byteOff, v, true);
  }
  bit(seg: number, word: number, bitOff: number, v: boolean): void {
    const b = this.segs[seg]!.buf;
    const at = word * 8 + (bitOff >> 3);
    if (v) b.setUint8(at, b.getUint8(at) | (1 << (bitOff & 7)));
  }

  finish(): Uint8Array {
    const n = this.segs.length;
    const header = (4 + 4 * n + 7) & ~7;
    const total = header + this.segs.reduce((a, s) => a + s.used * 8, 0);
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, n - 1, true);
    let pos = header;
    this.segs.forEach((s, i) => {
      dv.setUint32(4 + 4 * i, s.used, true);
      out.set(new Uint8Array(s.buf.buffer, 0, s.used * 8), pos);
      pos += s.used * 8;
    });
    return out;
  }
}

function writeInode(w: ScatterWriter, [s, d, p]: [number, number, number], n: Inode): void {
  w.u64(s, d, 0, n.ino);
  w.u16(s, d, 8, MODE_TAG[n.mode.kind]);
  w.u16(s, d, 10, n.permissions);
  w.u32(s, d, 12, n.uid);
  w.u32(s, d + 2, 0, n.gid);
  const m = n.mode;
  if (m.kind === "chr" || m.kind === "blk") {
    const [cs, cd] = w.structAt(s, p, 2, 0);
    w.u64(cs, cd, 0, m.major);
    w.u64(cs, cd + 1, 0, m.minor);
  } else if (m.kind === "dir") {
    const [ds, dd, dp] = w.structAt(s, p, 1, 1);
    w.bit(ds, dd, 0, m.lookBelow);
    w.listAt(ds, dp, m.entries.length, 1, 1).forEach(([es, ed, ep], i) => {
      w.u64(es, ed, 0, m.entries[i]!.ino);
      w.dataAt(es, ep, m.entries[i]!.name);
    });
  } else if (m.kind === "file") {
    w.listAt(s, p, m.chunks.length, 1, 1).forEach(([cs, cd, cp], i) => {
      const c = m.chunks[i]!;
      w.u64(cs, cd, 0, c.len);
      const [bs, bd, bp] = w.structAt(cs, cp, 2, 1);
      w.u64(bs, bd, 0, c.blob.offset);
      w.bit(bs, bd, 64, c.blob.compressed);
      w.dataAt(bs, bp, c.blob.digest);
    });
  }
  if (n.additional) {
    const [as, , ap] = w.structAt(s, p + 1, 0, 2);
    w.listAt(as, ap, n.additional.xattrs.length, 0, 2).forEach(([xs, , xp], i) => {
      w.dataAt(xs, xp, n.additional!.xattrs[i]!.key);
      w.dataAt(xs, xp + 1, n.additional!.xattrs[i]!.val);
    });
    w.dataAt(as, ap + 1, n.additional.symlinkTarget);
  }
}

/** Encode a Rootfs with objects scattered over segments. */
export function scatterEncode(r: Rootfs, opts: WriterOptions, stats?: ScatterWriter["stats"]): Uint8Array {
  const w = new ScatterWriter(opts);
  const [s, d, p] = w.structAt(0, 0, 1, 2);
  w.u64(s, d, 0, r.manifestVersion);
  w.listAt(s, p, r.metadatas.length, 0, 1).forEach(([ms, , mp], i) => {
    const inodes = r.metadatas[i]!.inodes;
    w.listAt(ms, mp, inodes.length, 3, 2).forEach((pos, k) => writeInode(w, pos, inodes[k]!));
  });
  w.listAt(s, p + 1, r.fsVerityData.length, 0, 2).forEach(([vs, , vp], i) => {
    w.dataAt(vs, vp, r.fsVerityData[i]!.digest);
    w.dataAt(vs, vp + 1, r.fsVerityData[i]!.verity);
  });
  if (stats) for (const k of ["near", "far", "doubleFar"] as const) stats[k] += w.stats[k];
  return w.finish();
}

/** A random (not necessarily meaningful) Rootfs value exercising every field and union member. */
export function randomRootfs(seed: number, maxInodes = 12): Rootfs {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const bytes = (max: number) => Uint8Array.from({ length: int(max + 1) }, () => int(256));
  const u64 = () => (r() < 0.2 ? BigInt.asUintN(64, (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32))) : BigInt(int(100000)));
  const kinds = Object.keys(MODE_TAG) as Array<keyof typeof MODE_TAG>;
  const inode = (): Inode => {
    const kind = kinds[int(kinds.length)]!;
    let mode: Inode["mode"];
    if (kind === "chr" || kind === "blk") mode = { kind, major: u64(), minor: u64() };
    else if (kind === "dir") mode = { kind, entries: Array.from({ length: int(5) }, () => ({ ino: u64(), name: bytes(20) })), lookBelow: r() < 0.3 };
    else if (kind === "file") mode = { kind, chunks: Array.from({ length: int(4) }, () => ({ blob: { digest: bytes(40), offset: u64(), compressed: r() < 0.5 }, len: u64() })) };
    else mode = { kind };
    const additional =
      r() < 0.4 ? { xattrs: Array.from({ length: int(3) }, () => ({ key: bytes(12), val: bytes(30) })), symlinkTarget: r() < 0.5 ? bytes(50) : null } : null;
    return { ino: u64(), mode, uid: int(2 ** 32), gid: int(2 ** 32), permissions: int(2 ** 16), additional };
  };
  return {
    metadatas: Array.from({ length: int(4) }, () => ({ inodes: Array.from({ length: int(maxInodes) }, inode) })),
    fsVerityData: Array.from({ length: int(4) }, () => ({ digest: bytes(32), verity: bytes(32) })),
    manifestVersion: u64(),
  };
}
