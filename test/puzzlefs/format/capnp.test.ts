import { describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { CapnpMessage } from "../../../src/puzzlefs/format/capnp.ts";

// Hand-assembled messages: each segment is a list of 64-bit words (encoding: https://capnproto.org/encoding.html).
const structPtr = (off: number, dw: number, pc: number) => (BigInt(pc) << 48n) | (BigInt(dw) << 32n) | BigInt((off << 2) >>> 0);
const listPtr = (off: number, size: number, count: number) => (BigInt(count) << 35n) | (BigInt(size) << 32n) | BigInt(((off << 2) | 1) >>> 0);
const farPtr = (seg: number, word: number, double = false) => (BigInt(seg) << 32n) | BigInt(((word << 3) | (double ? 4 : 0) | 2) >>> 0);
const tag = (count: number, dw: number, pc: number) => (BigInt(pc) << 48n) | (BigInt(dw) << 32n) | BigInt((count << 2) >>> 0);

function frame(...segs: bigint[][]): Uint8Array {
  const header = (4 + 4 * segs.length + 7) & ~7;
  const out = new Uint8Array(header + segs.reduce((a, s) => a + s.length * 8, 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, segs.length - 1, true);
  let p = header;
  segs.forEach((s, i) => {
    dv.setUint32(4 + 4 * i, s.length, true);
    for (const w of s) {
      dv.setBigUint64(p, BigInt.asUintN(64, w), true);
      p += 8;
    }
  });
  return out;
}

function err(f: () => unknown): PfsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    return e as PfsError;
  }
  throw new Error("expected an error");
}

describe("format/capnp framing", () => {
  it("reads segment tables of any count, with the odd-count padding word", () => {
    const m = new CapnpMessage(frame([structPtr(0, 1, 0), 7n], [], [1n, 2n]), "m");
    expect(m.segmentCount).toBe(3);
    expect(m.words).toBe(4);
    const r = m.root("R")!;
    expect(m.u64(r, 0)).toBe(7n);
  });

  it("refuses too many segments (LIMIT), truncation and trailing bytes (FORMAT)", () => {
    const many = new Uint8Array(8 + 4 * 601);
    new DataView(many.buffer).setUint32(0, 600, true);
    expect(err(() => new CapnpMessage(many, "m")).code).toBe(ErrorCode.LIMIT);
    expect(err(() => new CapnpMessage(many.subarray(0, 100), "m")).message).toMatch(/^m framing @0x0: truncated or not a Cap'n Proto message: segment table for 601 segments/);
    const ok = frame([structPtr(0, 1, 0), 7n]);
    expect(err(() => new CapnpMessage(ok.subarray(0, ok.length - 1), "rootfs")).message).toBe(
      "rootfs segment 0 @0x4: truncated: segment extends past the end of the message: expected ≤ 23 bytes, got 24",
    );
    const trailing = new Uint8Array(ok.length + 8);
    trailing.set(ok);
    expect(err(() => new CapnpMessage(trailing, "m")).message).toMatch(/trailing bytes after the last segment/);
    expect(new CapnpMessage(frame([]), "m").root("R")).toBeNull();
  });
});

describe("format/capnp pointers", () => {
  it("follows a far pointer with a single landing pad and a double-far pointer", () => {
    // seg0: root → far to seg1 word 1 (pad), pad → struct right after it.
    const single = new CapnpMessage(frame([farPtr(1, 1)], [0n, structPtr(0, 1, 0), 42n]), "m");
    expect(single.u64(single.root("R")!, 0)).toBe(42n);
    // seg0: root → double-far pad in seg2 word 0; pad word 0 → far to seg1 word 0 (content), pad word 1 = tag.
    const dbl = new CapnpMessage(frame([farPtr(2, 0, true)], [43n, 9n], [farPtr(1, 0), structPtr(0, 2, 0)]), "m");
    const r = dbl.root("R")!;
    expect([dbl.u64(r, 0), dbl.u64(r, 8), r.seg]).toEqual([43n, 9n, 1]);
  });

  it("names the object and offset of every bad pointer", () => {
    expect(err(() => new CapnpMessage(frame([farPtr(5, 0)]), "rootfs").root("Rootfs")).message).toBe(
      "rootfs Rootfs @0x8: far pointer to a segment that does not exist: expected < 1, got 5",
    );
    expect(err(() => new CapnpMessage(frame([farPtr(0, 9)]), "m").root("R")).message).toMatch(/R @0x8: far pointer landing pad outside its segment/);
    expect(err(() => new CapnpMessage(frame([farPtr(1, 0)], [farPtr(0, 0)]), "m").root("R")).message).toMatch(/landing pad is not a struct or list pointer/);
    expect(err(() => new CapnpMessage(frame([farPtr(1, 0, true)], [structPtr(0, 0, 0), 0n]), "m").root("R")).message).toMatch(/double-far landing pad/);
    expect(err(() => new CapnpMessage(frame([3n]), "m").root("R")).message).toMatch(/capability pointer/);
    expect(err(() => new CapnpMessage(frame([structPtr(0, 4, 0), 0n]), "m").root("R")).message).toMatch(/struct of 4 words lies outside segment 0/);
    expect(err(() => new CapnpMessage(frame([structPtr(-3, 1, 0), 0n]), "m").root("R")).message).toMatch(/lies outside segment 0/);
    expect(err(() => new CapnpMessage(frame([listPtr(0, 2, 3), 0n]), "m").root("R")).message).toMatch(/expected a struct pointer, found a list pointer/);
  });

  it("a list claiming more elements than the message holds is a FORMAT error", () => {
    // Composite list: 2 words of content announced, tag claims 1000 elements of 1 word.
    const m = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 7, 2), tag(1000, 1, 0), 0n, 0n]), "rootfs");
    const r = m.root("Rootfs")!;
    const e = err(() => m.structList(r.seg, m.ptr(r, 0), r.depth, "InodeVector.inodes"));
    expect(e.code).toBe(ErrorCode.FORMAT);
    expect(e.message).toBe("rootfs InodeVector.inodes @0x18: list claims 1000 elements of 1 words, more than its 2 words hold: expected ≤ 2 words, got 1000");
    // Word count beyond the segment.
    const m2 = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 7, 500), tag(1, 1, 0)]), "rootfs");
    const r2 = m2.root("R")!;
    expect(err(() => m2.structList(r2.seg, m2.ptr(r2, 0), 1, "Dir.entries")).message).toMatch(/Dir.entries @0x10: list of 500 words claims more than segment 0 holds/);
    // Data longer than the segment.
    const m3 = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 2, 100), 0n]), "rootfs");
    const r3 = m3.root("R")!;
    expect(err(() => m3.data(r3.seg, m3.ptr(r3, 0), 1, "DirEntry.name")).message).toMatch(/DirEntry.name @0x10: Data of 100 bytes claims more than segment 0 holds/);
  });

  it("zero-sized elements are charged per element: a huge empty-struct list exhausts the budget (LIMIT)", () => {
    const m = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 7, 0), tag(100_000_000, 0, 0)]), "rootfs");
    const r = m.root("R")!;
    const e = err(() => m.structList(r.seg, m.ptr(r, 0), r.depth, "Rootfs.metadatas"));
    expect(e.code).toBe(ErrorCode.LIMIT);
    expect(e.message).toMatch(/rootfs Rootfs.metadatas @0x10: exceeds limit \(traversal budget of 65536 words\)/);
    const voids = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 0, 100_000_000)]), "m");
    const rv = voids.root("R")!;
    expect(err(() => voids.structList(rv.seg, voids.ptr(rv, 0), 1, "L")).code).toBe(ErrorCode.LIMIT);
  });

  it("zero-sized elements: at most one per message word (a tiny message cannot make consumers allocate millions of objects)", () => {
    const m = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 7, 0), tag(1000, 0, 0)]), "rootfs");
    const r = m.root("R")!;
    const e = err(() => m.structList(r.seg, m.ptr(r, 0), r.depth, "Dir.entries"));
    expect(e.code).toBe(ErrorCode.LIMIT);
    expect(e.message).toBe("rootfs Dir.entries @0x10: exceeds limit (1000 zero-sized list elements > 3 (one per message word))");
    const ok = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 7, 0), tag(3, 0, 0)]), "rootfs");
    const ro = ok.root("R")!;
    expect(ok.structList(ro.seg, ok.ptr(ro, 0), ro.depth, "Dir.entries")!.count).toBe(3);
    const voids = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 0, 50)]), "m");
    const rv = voids.root("R")!;
    expect(err(() => voids.structList(rv.seg, voids.ptr(rv, 0), 1, "L")).message).toMatch(/50 zero-sized list elements > 2/);
  });

  it("re-reading shared objects draws down the traversal budget; resetBudget restores it", () => {
    // Two pointers to the same 4-word struct.
    const m = new CapnpMessage(frame([structPtr(0, 0, 2), structPtr(1, 4, 0), structPtr(0, 4, 0), 1n, 2n, 3n, 4n]), "m", { traversalWords: 9 });
    const r = m.root("R")!;
    m.struct(r.seg, m.ptr(r, 0), r.depth, "A");
    expect(m.budget).toBe(9 - 2 - 4);
    expect(err(() => m.struct(r.seg, m.ptr(r, 1), r.depth, "B")).code).toBe(ErrorCode.LIMIT);
    m.resetBudget();
    expect(m.u64(m.struct(r.seg, m.ptr(r, 1), r.depth, "B")!, 24)).toBe(4n);
  });

  it("nesting depth is limited", () => {
    // A struct whose pointer points back to itself: infinitely deep.
    const m = new CapnpMessage(frame([structPtr(0, 0, 1), structPtr(-1, 0, 1)]), "m", { nestingDepth: 5 });
    let s = m.root("R")!;
    const e = err(() => {
      for (;;) s = m.struct(s.seg, m.ptr(s, 0), s.depth, "Self")!;
    });
    expect(e.code).toBe(ErrorCode.LIMIT);
    expect(e.message).toMatch(/nesting depth 5/);
  });

  it("fields beyond a struct's sections read as defaults; primitive lists read as struct lists", () => {
    const m = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 5, 2), 7n, 8n]), "m");
    const r = m.root("R")!;
    expect([m.u64(r, 0), m.u32(r, 12), m.u16(r, 8), m.bit(r, 64), m.ptr(r, 3)]).toEqual([0n, 0, 0, false, -1]);
    const l = m.structList(r.seg, m.ptr(r, 0), r.depth, "L")!;
    expect([l.count, m.u64(m.element(l, 1), 0), m.u64(m.element(l, 1), 8)]).toEqual([2, 8n, 0n]);
    const bits = new CapnpMessage(frame([structPtr(0, 0, 1), listPtr(0, 1, 5), 0n]), "m");
    const rb = bits.root("R")!;
    expect(err(() => bits.structList(rb.seg, bits.ptr(rb, 0), 1, "L")).message).toMatch(/list of bits/);
    expect(err(() => bits.data(rb.seg, bits.ptr(rb, 0), 1, "D")).message).toMatch(/expected Data/);
  });
});
