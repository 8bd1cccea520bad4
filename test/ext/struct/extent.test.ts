import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTENT, EXTENT_HEADER, EXTENT_IDX, EXTENT_MAGIC, EXTENT_TAIL, EXTENTS_PER_BLOCK, writeExtent, writeExtentHeader, writeExtentIdx } from "../../../src/ext/struct/extent.ts";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { debugfs } from "../helpers.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("extent tree structures", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("are contiguous: header/extent/index 12 bytes, tail 4; 340 entries per 4 KiB block", () => {
    for (const s of [EXTENT_HEADER, EXTENT, EXTENT_IDX, EXTENT_TAIL]) expect(layoutProblems(s)).toEqual([]);
    expect([EXTENT_HEADER.size, EXTENT.size, EXTENT_IDX.size, EXTENT_TAIL.size]).toEqual([12, 12, 12, 4]);
    expect(EXTENTS_PER_BLOCK).toBe(340);
  });

  it("decode the extent block mke2fs wrote to what debugfs dump_extents prints", () => {
    const blk = ref.block(Number(/\(ETB0\):(\d+)/.exec(debugfs(ref.img, "stat /sparse"))![1]));
    const h = new StructView(EXTENT_HEADER, blk);
    expect(h.get("eh_magic")).toBe(EXTENT_MAGIC);
    expect(h.get("eh_max")).toBe(EXTENTS_PER_BLOCK);
    expect(h.get("eh_depth")).toBe(0);
    const got: string[] = [];
    for (let i = 0; i < h.get("eh_entries"); i++) {
      const e = new StructView(EXTENT, blk, 12 + i * 12);
      got.push(`${e.get("ee_block")}:${e.get("ee_start_lo") + e.get("ee_start_hi") * 2 ** 32}:${e.get("ee_len")}`);
    }
    const want = [...debugfs(ref.img, "dump_extents -l /sparse").matchAll(/^\s*1\/\s*1\s+\d+\/\s*\d+\s+(\d+)\s+-\s+\d+\s+(\d+)\s+-\s+\d+\s+(\d+)/gm)].map((m) => `${m[1]}:${m[2]}:${m[3]}`);
    expect(want.length).toBe(12);
    expect(got).toEqual(want);
  });

  it("writers produce the fields they were given, 48-bit block numbers included", () => {
    const b = new Uint8Array(48);
    writeExtentHeader(b, 0, 2, 4, 1);
    writeExtent(b, 12, 7, 32768, 2 ** 40 + 3);
    writeExtentIdx(b, 24, 9, 2 ** 33 + 1);
    const h = new StructView(EXTENT_HEADER, b);
    expect([h.get("eh_magic"), h.get("eh_entries"), h.get("eh_max"), h.get("eh_depth")]).toEqual([EXTENT_MAGIC, 2, 4, 1]);
    const e = new StructView(EXTENT, b, 12);
    expect([e.get("ee_block"), e.get("ee_len"), e.get("ee_start_hi"), e.get("ee_start_lo")]).toEqual([7, 32768, 256, 3]);
    const x = new StructView(EXTENT_IDX, b, 24);
    expect([x.get("ei_block"), x.get("ei_leaf_lo"), x.get("ei_leaf_hi")]).toEqual([9, 1, 2]);
  });
});
