/**
 * FastCDC "v2020" content-defined chunking (spec §3.3), cut-compatible with
 * fastcdc-rs 3.x `v2020::{FastCDC, StreamCDC}`, which upstream puzzlefs uses
 * with min 16 KiB, avg 64 KiB, max 256 KiB and normalization level 1.
 *
 * The rolling hash is 64-bit and wraps; JS bigint would be far too slow in the
 * inner loop, so it is kept as two uint32 halves (hi, lo). The masks use bits
 * up to 49, so both halves matter for the cut test, and the reported hash is
 * the full 64-bit value (the test vectors check it).
 */
import { createHash } from "node:crypto";
import { PfsError } from "../../common/errors.ts";
import { nativeCdcCut, type NativeCdcCut } from "../native.ts";

/** puzzlefs's parameters (spec §3.3). */
export const PUZZLEFS_CDC = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024, level: 1 } as const;

export interface CdcParams {
  min: number;
  avg: number;
  max: number;
  /** Normalization level 0–3 (fastcdc-rs `Normalization::Level{0..3}`). */
  level: number;
}

/** One chunk: its place in the stream, its bytes (owned by the caller) and the hash at the cut. */
export interface Chunk {
  offset: number;
  length: number;
  hash: bigint;
  data: Uint8Array;
}

/** MASKS[b] for b = 5…25 (fastcdc-rs v2020 table; spec §3.3), as [hi, lo] uint32 halves. */
const MASKS: ReadonlyArray<readonly [number, number]> = [
  0x1804110, 0x1803110, 0x18035100, 0x1800035300, 0x19000353000, 0x590003530000, 0xd90003530000, 0xd90103530000,
  0xd90303530000, 0xd90313530000, 0xd90f03530000, 0xd90303537000, 0xd90703537000, 0xd90707537000, 0xd91707537000,
  0xd91747537000, 0xd91767537000, 0xd93767537000, 0xd93777537000, 0xd93777577000, 0xdb3777577000,
].map((m) => [Math.floor(m / 2 ** 32), m >>> 0] as const);
const mask = (bits: number): readonly [number, number] => MASKS[bits - 5]!;

/** GEAR[i] = first 8 bytes (big-endian) of MD5(64 × byte i); GEAR_LS = GEAR << 1. */
const GEAR_HI = new Uint32Array(256);
const GEAR_LO = new Uint32Array(256);
const GEAR_LS_HI = new Uint32Array(256);
const GEAR_LS_LO = new Uint32Array(256);
/** The table as 256 u64 LE, for the native cutter. */
const GEAR_BYTES = Buffer.alloc(256 * 8);
for (let i = 0; i < 256; i++) {
  const d = createHash("md5").update(Buffer.alloc(64, i)).digest();
  const hi = d.readUInt32BE(0);
  const lo = d.readUInt32BE(4);
  GEAR_HI[i] = hi;
  GEAR_LO[i] = lo;
  GEAR_LS_HI[i] = ((hi << 1) | (lo >>> 31)) >>> 0;
  GEAR_LS_LO[i] = (lo << 1) >>> 0;
  GEAR_BYTES.writeUInt32LE(lo, i * 8);
  GEAR_BYTES.writeUInt32LE(hi, i * 8 + 4);
}

/** Derived, validated cut parameters. */
export class CdcConfig {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
  readonly sHi: number;
  readonly sLo: number;
  readonly lHi: number;
  readonly lLo: number;
  /** The masks as plain numbers (< 2^49, exact), for the native cutter. */
  readonly maskS: number;
  readonly maskL: number;

  constructor(p: CdcParams) {
    // fastcdc-rs's accepted ranges.
    const ok =
      Number.isInteger(p.min) && Number.isInteger(p.avg) && Number.isInteger(p.max) &&
      p.min >= 64 && p.min <= 1048576 && p.avg >= 256 && p.avg <= 4194304 && p.max >= 1024 && p.max <= 16777216 &&
      p.min <= p.avg && p.avg <= p.max && [0, 1, 2, 3].includes(p.level);
    if (!ok) throw PfsError.usage(`FastCDC parameters ${JSON.stringify(p)} are out of range`);
    this.min = p.min;
    this.avg = p.avg;
    this.max = p.max;
    const bits = Math.round(Math.log2(p.avg));
    [this.sHi, this.sLo] = mask(bits + p.level);
    [this.lHi, this.lLo] = mask(bits - p.level);
    this.maskS = this.sHi * 2 ** 32 + this.sLo;
    this.maskL = this.lHi * 2 ** 32 + this.lLo;
  }
}

/**
 * Find the first cut point in `src[start, start + n)` (spec §3.3 `cut`).
 * Returns the chunk length; the hash at the cut is left in `out`.
 */
export function cut(cfg: CdcConfig, src: Uint8Array, start: number, n: number, out: { hi: number; lo: number }): number {
  out.hi = 0;
  out.lo = 0;
  if (n <= cfg.min) return n;
  let center = cfg.avg;
  if (n > cfg.max) n = cfg.max;
  else if (n < center) center = n;
  let i = cfg.min >>> 1;
  let hi = 0;
  let lo = 0;
  for (let pass = 0; pass < 2; pass++) {
    const end = pass === 0 ? center >>> 1 : n >>> 1;
    const mHi = pass === 0 ? cfg.sHi : cfg.lHi;
    const mLo = pass === 0 ? cfg.sLo : cfg.lLo;
    // The shifted masks (mask << 1) for the even byte.
    const mlsHi = ((mHi << 1) | (mLo >>> 31)) >>> 0;
    const mlsLo = (mLo << 1) >>> 0;
    for (; i < end; i++) {
      const a = start + 2 * i;
      // h = (h << 2) + GEAR_LS[src[a]]
      let b = src[a]!;
      let l = ((lo << 2) >>> 0) + GEAR_LS_LO[b]!;
      hi = (((hi << 2) | (lo >>> 30)) + GEAR_LS_HI[b]! + (l > 0xffffffff ? 1 : 0)) >>> 0;
      lo = l >>> 0;
      if ((hi & mlsHi) === 0 && (lo & mlsLo) === 0) {
        out.hi = hi;
        out.lo = lo;
        return 2 * i;
      }
      // h = h + GEAR[src[a + 1]]
      b = src[a + 1]!;
      l = lo + GEAR_LO[b]!;
      hi = (hi + GEAR_HI[b]! + (l > 0xffffffff ? 1 : 0)) >>> 0;
      lo = l >>> 0;
      if ((hi & mHi) === 0 && (lo & mLo) === 0) {
        out.hi = hi;
        out.lo = lo;
        return 2 * i + 1;
      }
    }
  }
  out.hi = hi;
  out.lo = lo;
  return n;
}

/** cut() by the C inner loop when there is one, else by the JS one. */
function cutWith(native: NativeCdcCut | null, c: CdcConfig, src: Uint8Array, start: number, n: number, h: { hi: number; lo: number }): number {
  if (!native) return cut(c, src, start, n, h);
  const r = native(src, start, n, c.min, c.avg, c.max, c.maskS, c.maskL);
  h.hi = r[1];
  h.lo = r[2];
  return r[0];
}

/** StreamCdc's buffer size (at least 2 × max). Cuts do not depend on it. */
const STREAM_BUFFER = 4 << 20;

const toBig = (h: { hi: number; lo: number }): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);

/**
 * Streaming chunker: feed bytes with `push` (any split), then `finish`. Cuts
 * are identical to chunking the whole concatenation at once, because a cut is
 * only attempted with `max` bytes buffered or at end of stream (as StreamCDC).
 */
export class StreamCdc {
  private readonly cfg: CdcConfig;
  private buf: Uint8Array;
  private start = 0;
  private end = 0;
  /** Stream offset of buf[start]. */
  private offset = 0;
  private readonly h = { hi: 0, lo: 0 };
  private readonly native: NativeCdcCut | null;

  /** `native: false` forces the JS loop (the reference the C one is tested against). */
  constructor(params: CdcParams = PUZZLEFS_CDC, opts: { native?: boolean } = {}) {
    this.cfg = new CdcConfig(params);
    // Large, so that compact() (which moves the unconsumed tail, < max bytes,
    // to the front) runs once per few MiB instead of once per chunk or two.
    this.buf = new Uint8Array(Math.max(2 * this.cfg.max, STREAM_BUFFER));
    this.native = opts.native === false ? null : nativeCdcCut(GEAR_BYTES);
  }

  /** Whether the C inner loop is in use. */
  get isNative(): boolean {
    return this.native !== null;
  }

  /** Add bytes; returns the chunks that are now complete. */
  push(data: Uint8Array): Chunk[] {
    const out: Chunk[] = [];
    let pos = 0;
    while (pos < data.length) {
      if (this.end === this.buf.length) this.compact();
      const take = Math.min(data.length - pos, this.buf.length - this.end);
      this.buf.set(data.subarray(pos, pos + take), this.end);
      this.end += take;
      pos += take;
      while (this.end - this.start >= this.cfg.max) out.push(this.emit());
    }
    return out;
  }

  /** End of stream: the remaining chunks (the last may be shorter than min, hash 0). */
  finish(): Chunk[] {
    const out: Chunk[] = [];
    while (this.end > this.start) out.push(this.emit());
    return out;
  }

  private emit(): Chunk {
    const len = cutWith(this.native, this.cfg, this.buf, this.start, this.end - this.start, this.h);
    const chunk: Chunk = { offset: this.offset, length: len, hash: toBig(this.h), data: this.buf.slice(this.start, this.start + len) };
    this.start += len;
    this.offset += len;
    return chunk;
  }

  private compact(): void {
    this.buf.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }
}

/** Chunk a whole buffer at once (tests, small inputs). */
export function chunkAll(data: Uint8Array, params: CdcParams = PUZZLEFS_CDC, opts: { native?: boolean } = {}): Chunk[] {
  const s = new StreamCdc(params, opts);
  return [...s.push(data), ...s.finish()];
}

/** A slab of SlabCdc: one buffer of stream bytes and the chunks cut in it, in stream order. */
export interface Slab {
  buffer: ArrayBuffer;
  /** Each chunk's place in `buffer`. */
  chunks: Array<{ start: number; length: number }>;
}

/**
 * The builder's chunker: cuts like StreamCdc, without copying the bytes. The
 * caller reads the stream straight into `writable()` and reports how much it
 * read with `commit(n)`; chunks are cut in place. When a slab is full, the
 * unconsumed tail (fewer than `max` bytes) moves to the front of a fresh
 * buffer from `acquire`, and commit() returns the full slab with its chunks,
 * which now belongs to the caller (the builder hands it to a worker thread
 * and gets the buffer back for reuse). So file bytes are copied by the kernel
 * into the slab and nowhere else, apart from the tails.
 */
export class SlabCdc {
  private readonly cfg: CdcConfig;
  private readonly native: NativeCdcCut | null;
  private buf: Uint8Array;
  private chunks: Slab["chunks"] = [];
  private start = 0;
  private end = 0;
  private readonly h = { hi: 0, lo: 0 };

  /** `acquire` returns buffers of at least 2 × max bytes. */
  constructor(
    private readonly acquire: () => ArrayBuffer,
    params: CdcParams = PUZZLEFS_CDC,
    opts: { native?: boolean } = {},
  ) {
    this.cfg = new CdcConfig(params);
    this.native = opts.native === false ? null : nativeCdcCut(GEAR_BYTES);
    this.buf = this.fresh();
  }

  private fresh(): Uint8Array {
    const b = new Uint8Array(this.acquire());
    if (b.length < 2 * this.cfg.max) throw PfsError.internal(`SlabCdc: a slab of ${b.length} bytes is smaller than 2 × max (${2 * this.cfg.max})`);
    return b;
  }

  /** Where to put the next bytes of the stream (never empty). */
  writable(): Uint8Array {
    return this.buf.subarray(this.end);
  }

  /** `n` bytes were written at the start of writable(); returns the slab if it is now full. */
  commit(n: number): Slab | null {
    if (!(n > 0 && this.end + n <= this.buf.length)) throw PfsError.internal(`SlabCdc.commit(${n}) with ${this.buf.length - this.end} bytes writable`);
    this.end += n;
    while (this.end - this.start >= this.cfg.max) this.cutOne();
    if (this.end < this.buf.length) return null;
    const full: Slab = { buffer: this.buf.buffer as ArrayBuffer, chunks: this.chunks };
    const next = this.fresh();
    next.set(this.buf.subarray(this.start, this.end));
    this.buf = next;
    this.chunks = [];
    this.end -= this.start;
    this.start = 0;
    return full;
  }

  /** End of stream: the last slab, with the remaining chunks (possibly none). */
  finish(): Slab {
    while (this.end > this.start) this.cutOne();
    const last: Slab = { buffer: this.buf.buffer as ArrayBuffer, chunks: this.chunks };
    this.chunks = [];
    return last;
  }

  private cutOne(): void {
    const len = cutWith(this.native, this.cfg, this.buf, this.start, this.end - this.start, this.h);
    this.chunks.push({ start: this.start, length: len });
    this.start += len;
  }
}
