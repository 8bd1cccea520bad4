/**
 * Slow real-peer scenarios for the synthesized ext image: a 5 GiB file
 * with no holes (exported in full, checked by e2fsck and read back through
 * the kernel), and a 600 000-inode tree whose inode tables straddle the
 * first backup superblock.
 */
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryTree, type MemoryNodeInit } from "../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage } from "../../src/ext/index.ts";
import { TempDir, compareMounted, e2fsck, prng, withMount } from "../../test/ext/helpers.ts";

const GiB = 2 ** 30;

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 8 << 20 })) h.update(c as Buffer);
  return h.digest("hex");
}

describe("large synthesized images", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it("a 5 GiB file made of a repeated 1 MiB pattern: e2fsck clean, the kernel reads every byte right", async () => {
    const pattern = prng(42, 1 << 20);
    const size = 5 * GiB + 4321;
    const data = {
      size,
      read(off: number, len: number): Uint8Array {
        const b = new Uint8Array(len);
        for (let i = 0; i < len; ) {
          const p = (off + i) % pattern.length;
          const n = Math.min(len - i, pattern.length - p);
          b.set(pattern.subarray(p, p + n), i);
          i += n;
        }
        return b;
      },
    };
    const tree = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "five", ino: 2 }] }, 2: { kind: "file", data } });
    const img = tmp.file("five.img");
    let last = 0;
    await exportImage(new ExtImage(planExtImage(tree, { mtime: 0 })), img, (done, total) => {
      expect(done).toBeGreaterThan(last);
      expect(done).toBeLessThanOrEqual(total);
      last = done;
    });
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
    const want = createHash("sha256");
    for (let off = 0; off < size; off += 64 << 20) want.update(data.read(off, Math.min(64 << 20, size - off)));
    await withMount(img, async (d) => {
      expect(statSync(join(d, "five")).size).toBe(size);
      expect(await sha256File(join(d, "five"))).toBe(want.digest("hex"));
    });
  });

  it("600 000 inodes: inode tables cross the first backup superblock, e2fsck clean, mount equals the tree", async () => {
    const nodes: Record<number, MemoryNodeInit> = {};
    const top: Array<{ name: string; ino: number }> = [];
    let ino = 2;
    for (let d = 0; d < 600; d++) {
      const entries: Array<{ name: string; ino: number }> = [];
      for (let f = 0; f < 999; f++) {
        nodes[ino] = f % 100 === 7 ? { kind: "lnk", symlinkTarget: `../d${d}/f${f - 1}` } : { kind: "file", data: `${d}/${f}`, uid: d };
        entries.push({ name: `f${f}`, ino: ino++ });
      }
      entries.push({ name: "shared", ino: 3 }); // d0/f1, hard-linked from every directory
      nodes[ino] = { kind: "dir", entries, permissions: 0o750 };
      top.push({ name: `d${d}`, ino: ino++ });
    }
    nodes[1] = { kind: "dir", entries: top };
    const tree = new MemoryTree(nodes);
    const plan = planExtImage(tree, { mtime: 0 });
    expect(plan.geo.free.some(([s, n]) => s + n === 32768)).toBe(true); // a gap before the backup in group 1
    const img = tmp.file("many.img");
    await exportImage(new ExtImage(plan), img);
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
    await withMount(img, async (d) => {
      expect(readdirSync(d).length).toBe(601);
      expect(statSync(join(d, "d599", "shared")).nlink).toBe(601);
      expect(await compareMounted(tree, d)).toEqual([]);
    });
  });
});
