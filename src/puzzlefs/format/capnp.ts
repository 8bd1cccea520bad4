/**
 * A small, bounded reader for unpacked Cap'n Proto messages in standard
 * stream framing (spec §2.1), written for the fixed PuzzleFS schema.
 *
 * It follows every valid pointer form (near, far with a single landing pad,
 * double-far), never reads outside a segment, and charges every object it
 * reaches against a traversal budget (so shared or zero-sized objects cannot
 * amplify work) and a nesting depth. Every violation is a PfsError FORMAT
 * (LIMIT for the budgets) naming the object and the absolute byte offset in
 * the message. Data is returned as zero-copy views of the message bytes.
 *
 * Wire format: https://capnproto.org/encoding.html (pointer layouts are also
 * summarized in spec §2.5).
 */
import { PfsError } from "../../common/errors.ts";

export interface CapnpLimits {
  /**
   * Words that one operation may read. Default: max(64 Ki, 8 × message words).
   * (C++ uses a flat 8 Mi words; proportional to the message, so a 1 KiB
   * rootfs cannot make one operation visit, and consumers allocate, millions
   * of shared or zero-sized objects. Every operation of the reader and the
   * decoder visits each object about once.)
   */
  traversalWords?: number;
  /** Pointer nesting depth (C++ default 64). */
  nestingDepth?: number;
  /** Segments in the framing (C++ and Rust readers refuse more than 512). */
  maxSegments?: number;
}

/** A struct: data section at `data` (absolute byte offset), pointer section right after it. */
export interface StructRef {
  seg: number;
  data: number;
  dataBytes: number;
  ptrs: number;
  ptrCount: number;
  depth: number;
}

/** A list whose elements are structs (composite, or a primitive list read as structs). */
export interface StructListRef {
  seg: number;
  /** Absolute byte offset of element 0. */
  start: number;
  count: number;
  /** Bytes from one element to the next. */
  stride: number;
  dataBytes: number;
  ptrCount: number;
  depth: number;
}

const ELEMENT_BITS = [0, 1, 8, 16, 32, 64, 64, -1] as const;

export class CapnpMessage {
  readonly dv: DataView;
  readonly segStart: number[] = [];
  readonly segEnd: number[] = [];
  /** Total words in all segments. */
  readonly words: number;
  readonly traversalLimit: number;
  readonly nestingLimit: number;
  /** Words left for the current operation (reset with resetBudget). */
  budget: number;

  constructor(
    readonly bytes: Uint8Array,
    /** How errors name this message, e.g. "rootfs sha256:d4c6…". */
    readonly name: string,
    limits: CapnpLimits = {},
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const len = bytes.length;
    if (len < 8) throw PfsError.format(`${name} framing`, "truncated: shorter than one segment table", { offset: 0, expected: "≥ 8 bytes", got: len });
    const count = this.dv.getUint32(0, true) + 1;
    // Math, not bit ops: count may be up to 2^32 in garbage input.
    const header = Math.ceil((4 + 4 * count) / 8) * 8;
    if (header > len) throw PfsError.format(`${name} framing`, `truncated or not a Cap'n Proto message: segment table for ${count} segments`, { offset: 0, expected: `≥ ${header} bytes`, got: len });
    const maxSeg = limits.maxSegments ?? 512;
    if (count > maxSeg) throw PfsError.limit(`${name} framing @0x0`, `${count} segments > ${maxSeg}`);
    let pos = header;
    for (let i = 0; i < count; i++) {
      const w = this.dv.getUint32(4 + 4 * i, true);
      this.segStart.push(pos);
      pos += w * 8;
      this.segEnd.push(pos);
      if (pos > len) {
        throw PfsError.format(`${name} segment ${i}`, "truncated: segment extends past the end of the message", { offset: 4 + 4 * i, expected: `≤ ${len} bytes`, got: pos });
      }
    }
    if (pos !== len) throw PfsError.format(`${name} framing`, "trailing bytes after the last segment", { offset: pos, expected: pos, got: len });
    this.words = (len - header) / 8;
    this.traversalLimit = limits.traversalWords ?? Math.max(1 << 16, 8 * this.words);
    this.nestingLimit = limits.nestingDepth ?? 64;
    this.budget = this.traversalLimit;
  }

  /** Give the next operation a full traversal budget (each lookup is bounded, a long-lived reader is not starved). */
  resetBudget(): void {
    this.budget = this.traversalLimit;
  }

  get segmentCount(): number {
    return this.segStart.length;
  }

  fail(what: string, problem: string, offset: number, data: Record<string, unknown> = {}): never {
    throw PfsError.format(`${this.name} ${what}`, problem, { offset, ...data });
  }

  private charge(words: number, what: string, offset: number): void {
    this.budget -= words;
    if (this.budget < 0) throw PfsError.limit(`${this.name} ${what} @0x${offset.toString(16)}`, `traversal budget of ${this.traversalLimit} words`);
  }

  /**
   * Zero-sized list elements take no bytes, so a message of a few words can
   * claim millions of them, and every consumer that materializes one object
   * per element (directory entries, xattrs, layers) would turn a 1 KiB rootfs
   * into hundreds of MiB. No PuzzleFS list has meaningful all-default
   * elements: allow at most one per word of the message.
   */
  private zeroSized(count: number, what: string, offset: number): void {
    if (count > this.words) throw PfsError.limit(`${this.name} ${what} @0x${offset.toString(16)}`, `${count} zero-sized list elements > ${this.words} (one per message word)`);
  }

  private depthCheck(depth: number, what: string, offset: number): void {
    if (depth > this.nestingLimit) throw PfsError.limit(`${this.name} ${what} @0x${offset.toString(16)}`, `nesting depth ${this.nestingLimit}`);
  }

  // Result of resolve(): the segment and absolute byte offset of the object, and the (struct or list) pointer describing it.
  private rSeg = 0;
  private rTarget = 0;
  private rLo = 0;
  private rHi = 0;

  /**
   * Follow the pointer word at absolute byte `p` of segment `seg`; false when null.
   * Leaves the object location in rSeg/rTarget and its describing word in rLo/rHi.
   */
  private resolve(seg: number, p: number, what: string): boolean {
    if (p < 0) return false; // a pointer slot the struct does not have reads as null
    const dv = this.dv;
    const lo = dv.getUint32(p, true);
    const hi = dv.getUint32(p + 4, true);
    if (lo === 0 && hi === 0) return false;
    const kind = lo & 3;
    if (kind < 2) {
      this.rSeg = seg;
      this.rTarget = p + 8 + (lo >> 2) * 8; // signed 30-bit word offset from the next word
      this.rLo = lo;
      this.rHi = hi;
      return true;
    }
    if (kind === 3) this.fail(what, "unexpected capability pointer", p);
    // Far pointer: landing pad in segment `hi` at word `lo >>> 3`.
    const double = (lo & 4) !== 0;
    const padSeg = hi;
    if (padSeg >= this.segStart.length) this.fail(what, "far pointer to a segment that does not exist", p, { expected: `< ${this.segStart.length}`, got: padSeg });
    const pad = this.segStart[padSeg]! + (lo >>> 3) * 8;
    if (pad + (double ? 16 : 8) > this.segEnd[padSeg]!) this.fail(what, "far pointer landing pad outside its segment", p);
    this.charge(1, what, p);
    const plo = dv.getUint32(pad, true);
    const phi = dv.getUint32(pad + 4, true);
    if (!double) {
      if ((plo & 3) >= 2) this.fail(what, "far pointer landing pad is not a struct or list pointer", pad);
      this.rSeg = padSeg;
      this.rTarget = pad + 8 + (plo >> 2) * 8;
      this.rLo = plo;
      this.rHi = phi;
      return true;
    }
    // Double-far: pad word 0 is a far pointer (no landing pad) to the object's first word, word 1 its tag.
    if ((plo & 7) !== 2) this.fail(what, "double-far landing pad does not start with a single far pointer", pad);
    if (phi >= this.segStart.length) this.fail(what, "double-far pointer to a segment that does not exist", pad, { expected: `< ${this.segStart.length}`, got: phi });
    const tlo = dv.getUint32(pad + 8, true);
    if ((tlo & 3) >= 2) this.fail(what, "double-far tag is not a struct or list pointer", pad + 8);
    this.rSeg = phi;
    this.rTarget = this.segStart[phi]! + (plo >>> 3) * 8;
    this.rLo = tlo;
    this.rHi = dv.getUint32(pad + 12, true);
    return true;
  }

  private inSegment(seg: number, start: number, bytes: number): boolean {
    return start >= this.segStart[seg]! && start + bytes <= this.segEnd[seg]!;
  }

  /** Struct pointer at byte `p` (a pointer slot of an object at nesting `depth`); null when the pointer is null. */
  struct(seg: number, p: number, depth: number, what: string): StructRef | null {
    if (!this.resolve(seg, p, what)) return null;
    if ((this.rLo & 3) !== 0) this.fail(what, "expected a struct pointer, found a list pointer", p);
    const dataWords = this.rHi & 0xffff;
    const ptrCount = this.rHi >>> 16;
    const s = this.rSeg;
    const t = this.rTarget;
    const words = dataWords + ptrCount;
    if (!this.inSegment(s, t, words * 8)) this.fail(what, `struct of ${words} words lies outside segment ${s}`, p);
    this.depthCheck(depth + 1, what, p);
    this.charge(Math.max(1, words), what, p);
    return { seg: s, data: t, dataBytes: dataWords * 8, ptrs: t + dataWords * 8, ptrCount, depth: depth + 1 };
  }

  /** The root struct (segment 0, word 0); null for an empty message. */
  root(what: string): StructRef | null {
    if (this.segEnd[0]! - this.segStart[0]! < 8) return null;
    return this.struct(0, this.segStart[0]!, 0, what);
  }

  /** List(struct) pointer at byte `p`; null when the pointer is null. */
  structList(seg: number, p: number, depth: number, what: string): StructListRef | null {
    if (!this.resolve(seg, p, what)) return null;
    if ((this.rLo & 3) !== 1) this.fail(what, "expected a list pointer, found a struct pointer", p);
    const s = this.rSeg;
    const t = this.rTarget;
    const size = this.rHi & 7;
    const n = this.rHi >>> 3;
    this.depthCheck(depth + 1, what, p);
    if (size === 7) {
      // Composite: n = words after the tag; the tag is a struct pointer whose offset field is the element count.
      if (!this.inSegment(s, t, 8 + n * 8)) {
        this.fail(what, `list of ${n} words claims more than segment ${s} holds`, p, { expected: `≤ ${Math.max(0, (this.segEnd[s]! - t) / 8 - 1)} words`, got: n });
      }
      const tlo = this.dv.getUint32(t, true);
      const thi = this.dv.getUint32(t + 4, true);
      if ((tlo & 3) !== 0) this.fail(what, "composite list tag is not a struct pointer", t);
      const count = tlo >>> 2;
      const dw = thi & 0xffff;
      const pc = thi >>> 16;
      if (count * (dw + pc) > n) {
        this.fail(what, `list claims ${count} elements of ${dw + pc} words, more than its ${n} words hold`, t, { expected: `≤ ${n} words`, got: count * (dw + pc) });
      }
      // Zero-sized elements cost nothing to store but still cost work to visit: charge one per element.
      this.charge(1 + n + (dw + pc === 0 ? count : 0), what, p);
      if (dw + pc === 0) this.zeroSized(count, what, p);
      return { seg: s, start: t + 8, count, stride: (dw + pc) * 8, dataBytes: dw * 8, ptrCount: pc, depth: depth + 1 };
    }
    if (size === 1) this.fail(what, "a list of bits cannot be read as a list of structs", p);
    // A primitive list read as structs (the schema-evolution rule): each element is a struct with one field.
    const bits = ELEMENT_BITS[size]!;
    const bytes = Math.ceil((n * bits) / 64) * 8;
    if (!this.inSegment(s, t, bytes)) this.fail(what, `list claims ${n} elements, more than segment ${s} holds`, p, { expected: `≤ ${Math.max(0, this.segEnd[s]! - t)} bytes`, got: bytes });
    this.charge(Math.max(1, bytes / 8) + (bits === 0 ? n : 0), what, p);
    if (bits === 0) this.zeroSized(n, what, p);
    const isPtr = size === 6;
    return { seg: s, start: t, count: n, stride: bits / 8, dataBytes: isPtr ? 0 : bits / 8, ptrCount: isPtr ? 1 : 0, depth: depth + 1 };
  }

  /** Element i of a struct list (no bounds re-check: structList checked the whole list). */
  element(l: StructListRef, i: number): StructRef {
    const data = l.start + i * l.stride;
    return { seg: l.seg, data, dataBytes: l.dataBytes, ptrs: data + l.dataBytes, ptrCount: l.ptrCount, depth: l.depth };
  }

  /** Data (List(UInt8)) pointer at byte `p`: a view of the message bytes, or null. */
  data(seg: number, p: number, depth: number, what: string): Uint8Array | null {
    if (!this.resolve(seg, p, what)) return null;
    if ((this.rLo & 3) !== 1) this.fail(what, "expected Data (a byte list), found a struct pointer", p);
    if ((this.rHi & 7) !== 2) this.fail(what, "expected Data (a byte list), found another list type", p, { expected: "element size 2 (byte)", got: this.rHi & 7 });
    const n = this.rHi >>> 3;
    const s = this.rSeg;
    const t = this.rTarget;
    if (!this.inSegment(s, t, n)) this.fail(what, `Data of ${n} bytes claims more than segment ${s} holds`, p, { expected: `≤ ${Math.max(0, this.segEnd[s]! - t)}`, got: n });
    this.depthCheck(depth + 1, what, p);
    this.charge(Math.max(1, Math.ceil(n / 8)), what, p);
    return this.bytes.subarray(t, t + n);
  }

  // Field accessors: a field beyond the struct's data section reads as its default (0/false), as Cap'n Proto requires.

  u16(s: StructRef, off: number): number {
    return off + 2 <= s.dataBytes ? this.dv.getUint16(s.data + off, true) : 0;
  }

  u32(s: StructRef, off: number): number {
    return off + 4 <= s.dataBytes ? this.dv.getUint32(s.data + off, true) : 0;
  }

  u64(s: StructRef, off: number): bigint {
    return off + 8 <= s.dataBytes ? this.dv.getBigUint64(s.data + off, true) : 0n;
  }

  /** UInt64 as a number when ≤ 2^53-1, else -1 (callers decide whether that is an error). */
  u64n(s: StructRef, off: number): number {
    if (off + 8 > s.dataBytes) return 0;
    const hi = this.dv.getUint32(s.data + off + 4, true);
    if (hi > 0x1fffff) return -1;
    return hi * 0x100000000 + this.dv.getUint32(s.data + off, true);
  }

  bit(s: StructRef, bitOff: number): boolean {
    const byte = bitOff >>> 3;
    return byte < s.dataBytes ? ((this.dv.getUint8(s.data + byte) >>> (bitOff & 7)) & 1) === 1 : false;
  }

  /** Absolute byte offset of pointer slot i, or -1 when the struct has fewer pointers (a null pointer). */
  ptr(s: StructRef, i: number): number {
    return i < s.ptrCount ? s.ptrs + i * 8 : -1;
  }
}
