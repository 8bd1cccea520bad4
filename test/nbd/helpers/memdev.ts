/**
 * Test-only BlockDevices: bytes in memory with an explicit zero-extent map,
 * and fault injection (a byte range whose reads fail like a chunk whose
 * sha256 does not match: PfsError DIGEST with data.offset = first bad byte).
 */
import type { BlockDevice, Extent } from "../../../src/common/blockdev.ts";
import { PfsError } from "../../../src/common/errors.ts";

export interface MemDeviceOptions {
  /** Ranges [offset, length] that read as zero and are reported as zero extents. */
  zeros?: [number, number][];
  /** Reads touching [start, end) fail with DIGEST, reporting `start` (or the read's start, if later). */
  bad?: [number, number];
  blockSize?: number;
}

export class MemDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly data: Buffer;
  readonly zeros: [number, number][];
  bad: [number, number] | undefined;
  reads: [number, number][] = [];
  prefetched: [number, number][] = [];
  /** Delay each read by this many ms (to force out-of-order completion). */
  delay: (offset: number) => number = () => 0;

  constructor(data: Buffer, opts: MemDeviceOptions = {}) {
    this.data = Buffer.from(data);
    this.size = data.length;
    this.blockSize = opts.blockSize ?? 4096;
    this.zeros = (opts.zeros ?? []).slice().sort((a, b) => a[0] - b[0]);
    for (const [o, n] of this.zeros) this.data.fill(0, o, o + n);
    this.bad = opts.bad;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.reads.push([offset, length]);
    const ms = this.delay(offset);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    if (this.bad) {
      const [s, e] = this.bad;
      if (offset < e && offset + length > s) {
        const at = Math.max(s, offset);
        throw new PfsError("DIGEST", `chunk @0x${at.toString(16)}: sha256 mismatch: expected aa, got bb`, { data: { offset: at } });
      }
    }
    return this.data.subarray(offset, offset + length);
  }

  allocation(offset: number, length: number): Extent[] {
    const out: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    for (const [zo, zn] of this.zeros) {
      const ze = zo + zn;
      if (ze <= pos) continue;
      if (zo >= end) break;
      if (zo > pos) out.push({ offset: pos, length: zo - pos, zero: false });
      const s = Math.max(zo, pos);
      const t = Math.min(ze, end);
      out.push({ offset: s, length: t - s, zero: true });
      pos = t;
    }
    if (pos < end) out.push({ offset: pos, length: end - pos, zero: false });
    return out;
  }

  async prefetch(offset: number, length: number): Promise<void> {
    this.prefetched.push([offset, length]);
  }
}

/** Deterministic pseudo-random bytes (xorshift), so fixtures need no files. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * A large virtual device without a backing buffer: bytes are a function of
 * the absolute offset inside `period`-aligned data regions of `dataLen`
 * bytes; everything else is a zero extent.
 */
export class StripedDevice implements BlockDevice {
  readonly blockSize = 4096;
  constructor(
    readonly size: number,
    readonly period: number,
    readonly dataLen: number,
  ) {}

  static byteAt(o: number): number {
    return (o * 31 + (o >>> 8)) & 0xff;
  }

  private isData(o: number): boolean {
    return o % this.period < this.dataLen;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const b = Buffer.alloc(length);
    for (let i = 0; i < length; i++) if (this.isData(offset + i)) b[i] = StripedDevice.byteAt(offset + i);
    return b;
  }

  allocation(offset: number, length: number): Extent[] {
    const out: Extent[] = [];
    const end = offset + length;
    for (let p = offset; p < end; ) {
      const base = p - (p % this.period);
      const data = this.isData(p);
      const t = Math.min(end, data ? base + this.dataLen : base + this.period);
      out.push({ offset: p, length: t - p, zero: !data });
      p = t;
    }
    return out;
  }
}
