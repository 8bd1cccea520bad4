import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataMap, hasBackup, planGeometry } from "../../../src/ext/layout/geometry.ts";
import { TempDir } from "../helpers.ts";

describe("geometry", () => {
  it("puts backup superblocks where mke2fs does (sparse_super)", () => {
    const tmp = new TempDir();
    try {
      // mke2fs -n prints the layout without writing it (the file must exist).
      writeFileSync(tmp.file("x.img"), "");
      const out = execFileSync("mke2fs", ["-n", "-F", "-t", "ext4", "-b", "4096", "-O", "^resize_inode", tmp.file("x.img"), "1000G"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      const want = /Superblock backups stored on blocks:\s*([\d,\s]+)/.exec(out)![1]!.split(/[,\s]+/).filter(Boolean).map(Number);
      const groups = (1000 * 2 ** 30) / 4096 / 32768;
      const got: number[] = [];
      for (let g = 1; g < groups; g++) if (hasBackup(g)) got.push(g * 32768);
      expect(got).toEqual(want);
    } finally {
      tmp.cleanup();
    }
  });

  it("maps the logical data area around backup copies", () => {
    // Data starts at physical 100; 2-block holes at physical 32768 and 98304.
    const m = new DataMap(100, Float64Array.of(32768 - 100, 98304 - 100 - 2), 2);
    expect(m.phys(0)).toBe(100);
    expect(m.phys(32667)).toBe(32767);
    expect(m.phys(32668)).toBe(32770);
    const pieces: Array<[number, number, number]> = [];
    m.pieces(32660, 20, (p, len, off) => pieces.push([p, len, off]));
    expect(pieces).toEqual([
      [32760, 8, 0],
      [32770, 12, 8],
    ]);
  });

  it("reaches a fixed point: groups fit inodes and blocks, itables avoid backups, free space is accounted", () => {
    for (const [inodes, data] of [
      [20, 10],
      [40_000, 100],
      [600_000, 10],
      [1000, 5_000_000],
    ] as const) {
      const g = planGeometry(inodes, data, () => 0);
      expect(g.inodeCount).toBeGreaterThanOrEqual(inodes);
      expect(g.inodesPerGroup % 16).toBe(0);
      expect(g.inodesPerGroup).toBeLessThanOrEqual(32768);
      expect(Math.ceil(g.blocks / 32768)).toBe(g.groups);
      const holes = g.backupGroups.map((b) => [b * 32768, b * 32768 + 1 + g.gdtBlocks] as const);
      for (let i = 0; i < g.groups; i++) {
        for (const [s, e] of holes) {
          expect(g.itLoc[i]! + g.itb <= s || g.itLoc[i]! >= e).toBe(true);
          expect(g.bbLoc[i]! < s || g.bbLoc[i]! >= e).toBe(true);
        }
      }
      expect(g.data.phys(g.dataBlocks - 1)).toBeLessThan(g.blocks);
      const used = g.blocks - g.free.reduce((a, [, n]) => a + n, 0);
      const meta = 1 + g.gdtBlocks + holes.length * (1 + g.gdtBlocks) + g.groups * (2 + g.itb);
      expect(used).toBe(meta + data);
    }
  });

  it("leaves a gap before a backup copy rather than splitting an inode table (600k inodes)", () => {
    const g = planGeometry(600_000, 10, () => 0);
    expect(g.free.some(([s, n]) => s + n === 32768)).toBe(true);
  });

  it("includes extent-tree blocks that depend on the layout", () => {
    let calls = 0;
    const g = planGeometry(100, 40_000, (m) => {
      calls++;
      return m.holeL.length;
    });
    expect(calls).toBeGreaterThan(0);
    expect(g.dataBlocks).toBe(40_000 + g.data.holeL.length);
  });
});
