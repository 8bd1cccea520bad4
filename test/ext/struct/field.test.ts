import { describe, expect, it } from "vitest";
import { StructView, defineStruct, layoutProblems } from "../../../src/ext/struct/field.ts";

describe("field tables", () => {
  const S = defineStruct("demo", 16, [
    ["a", 0, 1, ""],
    ["b", 1, 1, ""],
    ["c", 2, 2, ""],
    ["d", 4, 4, ""],
    ["e", 8, 8, ""],
  ]);

  it("finds gaps, overlaps and wrong totals", () => {
    expect(layoutProblems(S)).toEqual([]);
    expect(layoutProblems(defineStruct("gap", 8, [["a", 0, 2, ""], ["b", 4, 4, ""]]))).toHaveLength(1);
    expect(layoutProblems(defineStruct("overlap", 4, [["a", 0, 4, ""], ["b", 2, 2, ""]])).length).toBeGreaterThan(0);
    expect(layoutProblems(defineStruct("short", 8, [["a", 0, 4, ""]]))).toHaveLength(1);
  });

  it("writes little-endian integers of every width at the right offsets", () => {
    const buf = new Uint8Array(20);
    const v = new StructView(S, buf, 2).set("a", 0x12).set("b", 0xff).set("c", 0xbeef).set("d", 0xdeadbeef).set("e", 2 ** 40 + 5);
    expect(Buffer.from(buf).toString("hex")).toBe("0000" + "12" + "ff" + "efbe" + "efbeadde" + "0500000000010000" + "0000");
    expect([v.get("a"), v.get("b"), v.get("c"), v.get("d"), v.get("e")]).toEqual([0x12, 0xff, 0xbeef, 0xdeadbeef, 2 ** 40 + 5]);
  });

  it("copies byte fields and refuses oversize ones", () => {
    const B = defineStruct("bytes", 4, [["x", 0, 4, ""]]);
    const v = new StructView(B, new Uint8Array(4)).setBytes("x", Uint8Array.of(1, 2));
    expect([...v.bytes("x")]).toEqual([1, 2, 0, 0]);
    expect(() => v.setBytes("x", new Uint8Array(5))).toThrow(RangeError);
    expect(() => v.set("x", 1)).not.toThrow();
  });
});
