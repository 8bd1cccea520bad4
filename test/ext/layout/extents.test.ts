import { describe, expect, it } from "vitest";
import { extentCount, extentsOf, extentsPerBlockAt, treeShape } from "../../../src/ext/layout/extents.ts";
import { DataMap } from "../../../src/ext/layout/geometry.ts";

describe("extents", () => {
  const map = new DataMap(1000, Float64Array.of(31766, 97300), 2);

  it("split at backup holes and at 32768 blocks, covering the range exactly", () => {
    const ex = extentsOf(map, 0, 100_000);
    expect(ex.every((e) => e.len <= 32768 && e.len > 0)).toBe(true);
    expect(ex.reduce((a, e) => a + e.len, 0)).toBe(100_000);
    for (let i = 1; i < ex.length; i++) expect(ex[i]!.lblk).toBe(ex[i - 1]!.lblk + ex[i - 1]!.len);
    expect(ex[0]).toEqual({ lblk: 0, len: 31766, pblk: 1000 });
    expect(ex[1]!.pblk).toBe(1000 + 31766 + 2);
    expect(extentCount(map, 0, 100_000)).toBe(ex.length);
    expect(extentsOf(map, 0, 100_000, 2, 3)).toEqual([ex[2]]);
  });

  it("fit in the inode up to 4, then need 1, 2, … levels of 340-entry blocks", () => {
    expect(treeShape(4)).toBeNull();
    expect(treeShape(5)).toEqual({ depth: 1, levels: [1], blocks: 1 });
    expect(treeShape(1360)).toEqual({ depth: 1, levels: [4], blocks: 4 });
    expect(treeShape(1361)).toEqual({ depth: 2, levels: [1, 5], blocks: 6 });
    const s = treeShape(340 * 340 * 4 + 1)!;
    expect(s.depth).toBe(3);
    expect(extentsPerBlockAt(s, 0)).toBe(340 ** 3);
    expect(extentsPerBlockAt(s, 2)).toBe(340);
  });
});
