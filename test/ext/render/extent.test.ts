import { openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryTree } from "../../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage } from "../../../src/ext/index.ts";
import { TempDir, debugfs, e2fsck, exportMeta, markedFile, withMount } from "../helpers.ts";

const MiB = 1 << 20;
const GiB = 1 << 30;
const STRIDE = 7 * MiB + 3;

describe("extent trees", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it("a 600 MiB file across five groups gets a depth-1 tree the kernel reads correctly", async () => {
    const size = 600 * MiB + 123;
    const tree = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "f", ino: 2 }] }, 2: { kind: "file", data: markedFile(size, STRIDE) } });
    const dev = new ExtImage(planExtImage(tree, { mtime: 0 }));
    const img = tmp.file("d1.img");
    await exportImage(dev, img);
    expect(e2fsck(img).code).toBe(0);
    const ext = debugfs(img, "dump_extents /f");
    expect(ext).toMatch(/^\s*0\/\s*1\s/m);
    expect(ext).toMatch(/^\s*1\/\s*1\s/m);
    const leaves = [...ext.matchAll(/^\s*1\/\s*1\s+\d+\/\s*\d+\s+(\d+)\s+-\s+(\d+)\s+(\d+)\s+-\s+(\d+)\s+(\d+)/gm)];
    expect(leaves.length).toBeGreaterThan(4);
    expect(Math.max(...leaves.map((m) => Number(m[5])))).toBeLessThanOrEqual(32768);
    expect(leaves.reduce((a, m) => a + Number(m[5]), 0)).toBe(Math.ceil(size / 4096));
    await withMount(img, (d) => {
      const fd = openSync(join(d, "f"), "r");
      try {
        const b = Buffer.alloc(2);
        for (let k = 0; k * STRIDE < size; k++) {
          const n = readSync(fd, b, 0, 2, k * STRIDE);
          expect([...b.subarray(0, n)]).toEqual(k * STRIDE + 1 < size ? [(k % 251) + 1, 0] : [(k % 251) + 1]);
        }
      } finally {
        closeSync(fd);
      }
    });
  });

  it("a 180 GiB file gets a depth-2 tree that e2fsck accepts", async () => {
    const size = 180 * GiB;
    const tree = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "huge", ino: 2 }] }, 2: { kind: "file", data: markedFile(size, GiB) } });
    const dev = new ExtImage(planExtImage(tree, { mtime: 0 }));
    const img = tmp.file("d2.img");
    await exportMeta(dev, img);
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
    const ext = debugfs(img, "dump_extents -n /huge");
    expect(ext).toMatch(/^\s*0\/\s*2\s/m);
    expect(ext).toMatch(/^\s*1\/\s*2\s/m);
    expect(debugfs(img, "stat /huge")).toMatch(new RegExp(`Size: ${size}\\b`));
    expect(tree.readFileCalls).toBe(0);
  });
});
