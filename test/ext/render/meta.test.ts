import { execFileSync, spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryTree, type MemoryNodeInit } from "../../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage } from "../../../src/ext/index.ts";
import { RK } from "../../../src/ext/layout/regions.ts";
import { renderBlockBitmap, renderInodeBitmap, renderSuperblock } from "../../../src/ext/render/meta.ts";
import { verifySuperblockCsum } from "../../../src/ext/csum.ts";
import { TempDir, e2fsck, exportMeta, markedFile } from "../helpers.ts";

const GiB = 1 << 30;
const bit = (bm: Uint8Array, i: number): number => (bm[i >>> 3]! >> (i & 7)) & 1;

describe("group metadata", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());
  // 20 GiB: 161 groups, so two GDT blocks and backups in groups 1, 3, 5, 7, 9, 25, 27, 49, 81, 125.
  const tree = new MemoryTree({
    1: { kind: "dir", entries: [{ name: "f", ino: 2 }, { name: "g", ino: 3 }] },
    2: { kind: "file", data: markedFile(20 * GiB, GiB) },
    3: { kind: "file", data: "g" },
  });
  const dev = new ExtImage(planExtImage(tree, { mtime: 0, digest: "sha256:meta" }));
  const { geo } = dev.plan;

  it("spreads a big image over >128 groups with a 2-block GDT, and e2fsck accepts it from the primary and from a backup", async () => {
    expect(geo.groups).toBeGreaterThan(128);
    expect(geo.gdtBlocks).toBe(2);
    const img = tmp.file("m.img");
    await exportMeta(dev, img);
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
    for (const g of [1, 3, 125]) {
      const b = spawnSync("e2fsck", ["-fn", "-b", String(g * 32768), "-B", "4096", img], { encoding: "utf8" });
      expect(b.status, `${b.stdout}${b.stderr}`).toBe(0);
    }
    const d = execFileSync("dumpe2fs", [img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const backups = [...d.matchAll(/^Group (\d+):.*\n\s+Backup superblock at (\d+)/gm)].map((m) => Number(m[1]));
    expect(backups).toEqual(geo.backupGroups);
    expect(backups).toEqual([1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
  });

  it("backup superblocks equal the primary except s_block_group_nr, each with a valid checksum", () => {
    const primary = renderSuperblock(dev.plan, 0);
    for (const g of geo.backupGroups) {
      const b = renderSuperblock(dev.plan, g);
      expect(verifySuperblockCsum(b)).toBe(true);
      expect(new DataView(b.buffer).getUint16(0x5a, true)).toBe(g);
      const diff = [...b].flatMap((x, i) => (x !== primary[i] ? [i] : []));
      expect(diff.every((i) => i === 0x5a || i === 0x5b || i >= 0x3fc)).toBe(true);
    }
  });

  it("sets bitmap padding: inode bits past inodes_per_group, block bits past the end of the device", () => {
    const ib = renderInodeBitmap(dev.plan, 0);
    for (let i = geo.inodesPerGroup; i < 32768; i += 97) expect(bit(ib, i)).toBe(1);
    expect(bit(ib, 0)).toBe(1);
    expect(bit(ib, geo.inodesPerGroup - 1)).toBe(geo.inodesPerGroup <= dev.plan.inodes.count ? 1 : 0);
    const last = geo.groups - 1;
    const bb = renderBlockBitmap(dev.plan, last);
    const inLast = geo.blocks - last * 32768;
    for (let i = inLast; i < 32768; i++) expect(bit(bb, i)).toBe(1);
  });

  it("leaves free blocks clear in the block bitmap and counts them (inode-heavy tree: a second, nearly empty group)", async () => {
    const entries = Array.from({ length: 40_000 }, (_, i) => ({ name: `e${i}`, ino: 10 + i }));
    const nodes: Record<number, MemoryNodeInit> = { 1: { kind: "dir", entries } };
    for (const e of entries) nodes[e.ino] = { kind: "fifo" };
    const small = new ExtImage(planExtImage(new MemoryTree(nodes), { mtime: 0 }));
    const g2 = small.plan.geo;
    expect(g2.groups).toBe(2);
    expect(g2.free.length).toBeGreaterThan(0);
    for (const [s0, n] of g2.free) {
      const g = Math.floor(s0 / 32768);
      const bb = renderBlockBitmap(small.plan, g);
      expect(bit(bb, s0 - g * 32768)).toBe(0);
      expect(bit(bb, s0 + n - 1 - g * 32768)).toBe(0);
    }
    expect(g2.freeInGroup.reduce((a, b) => a + b, 0)).toBe(g2.free.reduce((a, [, n]) => a + n, 0));
    const rt = small.plan.regions;
    let free = 0;
    for (let i = 0; i < rt.count; i++) if (rt.kind[i] === RK.FREE) free += rt.len[i]!;
    expect(free).toBe(g2.free.reduce((a, [, n]) => a + n, 0));
    const img = tmp.file("heavy.img");
    await exportImage(small, img);
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
  });
});
