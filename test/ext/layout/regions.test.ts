import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../../src/common/errors.ts";
import { RK, RegionTable, classOf } from "../../../src/ext/layout/regions.ts";

describe("RegionTable", () => {
  it("appends contiguously, merges seamless continuations, and refuses gaps or overlaps", () => {
    const t = new RegionTable();
    t.push(0, 2, RK.PRIMARY);
    t.push(2, 1, RK.BLOCK_BITMAP, 0);
    t.push(3, 1, RK.BLOCK_BITMAP, 1);
    t.push(4, 5, RK.FILE, 12, 0);
    t.push(9, 5, RK.FILE, 12, 5);
    t.push(14, 3, RK.FILE, 13, 0);
    t.push(17, 2, RK.FREE);
    t.push(19, 2, RK.FREE);
    expect(t.count).toBe(5);
    expect(() => t.push(30, 1, RK.FREE)).toThrow(expect.objectContaining({ code: ErrorCode.INTERNAL }));
    expect(() => t.push(20, 1, RK.FREE)).toThrow(expect.objectContaining({ code: ErrorCode.INTERNAL }));
    t.seal();
    expect([...t.start]).toEqual([0, 2, 4, 14, 17]);
    expect(t.find(3)).toBe(1);
    expect(t.find(13)).toBe(2);
    expect(t.find(20)).toBe(4);
    expect(t.regionAt(3)).toEqual({ start: 14 * 4096, len: 3 * 4096, kind: "file", what: "file", ino: 13, fileOffset: 0 });
    expect([...t.regions()].map((r) => r.kind)).toEqual(["meta", "meta", "file", "file", "zero"]);
  });

  it("classifies kinds", () => {
    expect(classOf(RK.INODE_TABLE)).toBe("meta");
    expect(classOf(RK.INODE_TABLE_UNUSED)).toBe("zero");
    expect(classOf(RK.FILE)).toBe("file");
    expect(classOf(RK.EXTENT_TREE)).toBe("meta");
  });
});
