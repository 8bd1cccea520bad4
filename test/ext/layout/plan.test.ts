import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { ErrorCode, isPfsError } from "../../../src/common/errors.ts";
import { MemoryTree, type MemoryNodeInit, type Tree } from "../../../src/puzzlefs/tree.ts";
import { planExtImage, type ExtPlan } from "../../../src/ext/index.ts";
import { FT } from "../../../src/ext/constants.ts";
import { RK } from "../../../src/ext/layout/regions.ts";
import { markedFile, tortureTree } from "../helpers.ts";

/** A view of a tree whose readFile fails the test if planning ever calls it. */
function noData(t: MemoryTree): Tree {
  return {
    rootIno: t.rootIno,
    nodeCount: t.nodeCount,
    node: (i) => t.node(i),
    readFile: () => {
      throw new Error("planning read file data");
    },
  };
}

function checkRegions(plan: ExtPlan): void {
  const rt = plan.regions;
  let at = 0;
  const fileBlocks = new Map<number, number>();
  for (const r of rt.regions()) {
    expect(r.start).toBe(at);
    expect(r.len).toBeGreaterThan(0);
    expect(r.len % 4096).toBe(0);
    at += r.len;
    if (r.kind === "file") fileBlocks.set(r.ino!, (fileBlocks.get(r.ino!) ?? 0) + r.len / 4096);
  }
  expect(at).toBe(plan.size);
  for (let e = 1; e <= plan.inodes.count; e++) {
    if (plan.inodes.ft[e] === FT.REG_FILE && plan.inodes.nblocks[e]! > 0) expect(fileBlocks.get(e)).toBe(plan.inodes.nblocks[e]);
  }
  for (let i = 1; i < rt.count; i++) expect(rt.start[i]).toBeGreaterThan(rt.start[i - 1]!);
  expect(rt.find(0)).toBe(0);
  expect(rt.find(plan.geo.blocks - 1)).toBe(rt.count - 1);
}

describe("planExtImage", () => {
  it("covers the device with sorted, contiguous regions, never reading file data", () => {
    const heavy: Record<number, MemoryNodeInit> = { 1: { kind: "dir", entries: Array.from({ length: 40_000 }, (_, i) => ({ name: `f${i}`, ino: 2 + i })) } };
    for (let i = 0; i < 40_000; i++) heavy[2 + i] = { kind: "file", data: "x" };
    const trees = [
      tortureTree(),
      new MemoryTree(heavy),
      new MemoryTree({ 1: { kind: "dir", entries: [{ name: "big", ino: 2 }] }, 2: { kind: "file", data: markedFile(3 * 2 ** 30, 1 << 20) } }),
    ];
    for (const t of trees) checkRegions(planExtImage(noData(t), { mtime: 0 }));
  });

  it("is deterministic", () => {
    const a = planExtImage(tortureTree(), { mtime: 1, digest: "d" });
    const b = planExtImage(tortureTree(), { mtime: 1, digest: "d" });
    expect([...a.regions.start]).toEqual([...b.regions.start]);
    expect([...a.regions.kind]).toEqual([...b.regions.kind]);
    expect([...a.inodes.dataL]).toEqual([...b.inodes.dataL]);
    expect(a.opts).toEqual(b.opts);
  });

  it("refuses an image beyond 2^32 blocks", () => {
    const TiB = 2 ** 40;
    const t = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "a", ino: 2 }, { name: "b", ino: 3 }] },
      2: { kind: "file", data: markedFile(10 * TiB, TiB) },
      3: { kind: "file", data: markedFile(10 * TiB, TiB) },
    });
    let err: unknown;
    try {
      planExtImage(t, { mtime: 0 });
    } catch (e) {
      err = e;
    }
    expect(isPfsError(err, ErrorCode.UNSUPPORTED)).toBe(true);
    expect(String(err)).toMatch(/16 TiB/);
  });

  it("keeps extent-tree and xattr sections consistent with the region map", () => {
    const plan = planExtImage(tortureTree(), { mtime: 0 });
    const rt = plan.regions;
    let xattr = 0;
    let dirs = 0;
    for (let i = 0; i < rt.count; i++) {
      if (rt.kind[i] === RK.XATTR) xattr += rt.len[i]!;
      if (rt.kind[i] === RK.DIR) dirs += rt.len[i]!;
    }
    expect(xattr).toBe(plan.xattrBlocks.count);
    expect(dirs).toBe(plan.sections.symlinks - plan.sections.dirs);
  });

  it("costs well under 300 bytes per inode once planned (typed arrays, not objects)", () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const N = 200_000;
    const nodes: Record<number, MemoryNodeInit> = {};
    const dirs: Array<{ name: string; ino: number }> = [];
    let ino = 2;
    for (let d = 0; d < N / 100; d++) {
      const entries = [];
      for (let f = 0; f < 99; f++) {
        nodes[ino] = { kind: "file", data: "y" };
        entries.push({ name: `file-${f}`, ino: ino++ });
      }
      nodes[ino] = { kind: "dir", entries };
      dirs.push({ name: `dir-${d}`, ino: ino++ });
    }
    nodes[1] = { kind: "dir", entries: dirs };
    const tree = new MemoryTree(nodes);
    const used = (): number => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = used();
    const plan = planExtImage(tree, { mtime: 0 });
    const after = used();
    const perInode = (after - before) / plan.inodes.count;
    expect(plan.inodes.count).toBeGreaterThan(N);
    expect(perInode).toBeLessThan(300);
  });
});
