import { execFileSync } from "node:child_process";
import { copyFileSync, openSync, readFileSync, readSync, closeSync, statSync, writeSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryTree, type MemoryNodeInit } from "../../src/puzzlefs/tree.ts";
import { ExtImage, FEATURE_NAMES, describe as describeImage, exportImage, planExtImage } from "../../src/ext/index.ts";
import { RK } from "../../src/ext/layout/regions.ts";
import { TempDir, compareMounted, e2fsck, prng, randomSeed, sha256, tortureTree, withMount } from "./helpers.ts";

const OPTS = { mtime: 1_700_000_000, digest: "sha256:0123", label: "torture" };

/** e2fsck -fn printed its five passes and the summary, nothing else. */
function expectClean(r: { code: number; out: string }): void {
  const noise = r.out
    .split("\n")
    .filter((l) => l && !/^(e2fsck \d|Pass \d: |.*: \d+\/\d+ files .* blocks$)/.test(l));
  expect(noise).toEqual([]);
  expect(r.code).toBe(0);
}

describe("synthesized image of the torture tree", () => {
  const tmp = new TempDir();
  const img = tmp.file("t.img");
  let tree: MemoryTree;
  let dev: ExtImage;

  beforeAll(async () => {
    tree = tortureTree();
    dev = new ExtImage(planExtImage(tree, OPTS));
    expect(tree.readFileCalls).toBe(0); // planning reads metadata only
    await exportImage(dev, img);
  });
  afterAll(() => tmp.cleanup());

  it("passes e2fsck -fn with no complaint", () => {
    expectClean(e2fsck(img));
  });

  it("has the feature list, label and hash settings dumpe2fs reports", () => {
    const h = execFileSync("dumpe2fs", ["-h", img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    expect(/^Filesystem features:\s+(.*)$/m.exec(h)![1]!.trim().split(/\s+/).sort()).toEqual([...FEATURE_NAMES].sort());
    expect(h).toMatch(/^Filesystem volume name:\s+torture$/m);
    expect(h).toMatch(/^Filesystem flags:\s+unsigned_directory_hash/m);
    expect(h).toMatch(/^Default directory hash:\s+half_md4$/m);
    expect(h).toMatch(/^Checksum type:\s+crc32c$/m);
    expect(h).toMatch(/^Inode size:\s+256$/m);
    expect(h).toMatch(/^Block size:\s+4096$/m);
    expect(h).toMatch(new RegExp(`^Filesystem UUID:\\s+${describeImage(dev.plan).uuid}$`, "m"));
  });

  it("mounts with the kernel's ext4 and equals the tree: contents, modes, owners, xattrs, links, devices, nlink", async () => {
    expect(await withMount(img, (d) => compareMounted(tree, d))).toEqual([]);
  });

  it("the mounted-tree comparison itself notices a difference", async () => {
    const other = tortureTree({ bigDir: 10 });
    const diffs = await withMount(img, (d) => compareMounted(other, d, { contents: false }));
    expect(diffs.some((x) => x.includes("/bigdir: entries"))).toBe(true);
  });

  it("is the same bytes when exported twice, and from a fresh plan", async () => {
    const again = tmp.file("again.img");
    await exportImage(new ExtImage(planExtImage(tree, OPTS)), again);
    expect(sha256(readFileSync(again))).toBe(sha256(readFileSync(img)));
  });

  it("depends on the digest and mtime options (UUID, hash seed, times), so they really reach the bytes", async () => {
    const a = await dev.readAt(0, 8192);
    const b = await new ExtImage(planExtImage(tree, { ...OPTS, digest: "sha256:other" })).readAt(0, 8192);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it("readAt of random ranges equals the same ranges of the export", async () => {
    const fd = openSync(img, "r");
    try {
      let seed = randomSeed();
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed % n;
      };
      for (let i = 0; i < 200; i++) {
        const off = i < 20 ? rnd(dev.size / 4096) * 4096 : rnd(dev.size);
        const len = Math.min(dev.size - off, 1 + rnd(i % 4 === 0 ? 300_000 : 9000));
        const want = Buffer.alloc(len);
        readSync(fd, want, 0, len, off);
        expect(Buffer.from(await dev.readAt(off, len)).equals(want), `range ${off}+${len} (seed ${seed})`).toBe(true);
      }
    } finally {
      closeSync(fd);
    }
  });

  it("allocation() covers the device with contiguous extents", () => {
    const ext = dev.allocation(0, dev.size);
    expect(ext.reduce((a, e) => a + e.length, 0)).toBe(dev.size);
    for (let i = 1; i < ext.length; i++) expect(ext[i]!.offset).toBe(ext[i - 1]!.offset + ext[i - 1]!.length);
    const mid = dev.allocation(4096 * 3 + 100, 5000);
    expect(mid[0]!.offset).toBe(4096 * 3 + 100);
    expect(mid.reduce((a, e) => a + e.length, 0)).toBe(5000);
  });

  it("a flipped byte in an inode, a directory block or an xattr block is caught by e2fsck (checksums are real)", () => {
    const rt = dev.plan.regions;
    const targets: Array<[string, number, RegExp]> = [];
    const first = (k: number): number => rt.start[[...rt.kind].indexOf(k)]! * 4096;
    targets.push(["inode", first(RK.INODE_TABLE) + 256 + 0x10, /checksum/i]); // root inode's i_mtime
    targets.push(["directory", first(RK.DIR) + 100, /checksum|corrupt|bad/i]);
    targets.push(["xattr block", first(RK.XATTR) + 40, /checksum|extended attribute/i]);
    for (const [what, off, re] of targets) {
      const bad = tmp.file(`bad-${what.replace(" ", "-")}.img`);
      copyFileSync(img, bad);
      const fd = openSync(bad, "r+");
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, off);
      b[0]! ^= 0x5a;
      writeSync(fd, b, 0, 1, off);
      closeSync(fd);
      const r = e2fsck(bad);
      expect(r.code, `${what}: ${r.out}`).not.toBe(0);
      expect(r.out, what).toMatch(re);
    }
  });

  it("describe() accounts for every block by kind", () => {
    const d = describeImage(dev.plan);
    expect(Object.values(d.blocksByKind).reduce((a, b) => a + b, 0)).toBe(d.blocks);
    expect(d.size).toBe(d.blocks * 4096);
    expect(d.inodesUsed).toBe(tree.nodeCount + 10); // + reserved 1, 3..10 + synthesized lost+found
    expect(d.blocksByKind.file).toBeGreaterThan(256);
  });
});

describe("images of random trees", () => {
  it("pass e2fsck -fn cleanly", async () => {
    const tmp = new TempDir();
    try {
      const base = randomSeed();
      for (let t = 0; t < 12; t++) {
        const seed = base + t;
        const r = prng(seed, 4096);
        let k = 0;
        const next = (n: number): number => r[k++ % r.length]! % n;
        const init: Record<number, MemoryNodeInit> = {};
        const dirs: number[] = [1];
        init[1] = { kind: "dir", entries: [] };
        let ino = 2;
        const count = 5 + next(200);
        for (let i = 0; i < count; i++) {
          const parent = dirs[next(dirs.length)]!;
          const kind = (["file", "file", "file", "dir", "lnk", "fifo", "chr", "sock"] as const)[next(8)]!;
          const name = `n${i}-${"x".repeat(next(60))}`;
          if (kind === "file" && i > 3 && next(5) === 0) {
            init[parent]!.entries!.push({ name, ino: 2 + next(ino - 2) });
            if (init[init[parent]!.entries!.at(-1)!.ino]!.kind === "dir") init[parent]!.entries!.pop();
            continue;
          }
          const me = ino++;
          init[parent]!.entries!.push({ name, ino: me });
          if (kind === "dir") {
            init[me] = { kind, entries: [], permissions: 0o700 + next(0o77) };
            dirs.push(me);
          } else if (kind === "file") init[me] = { kind, data: prng(seed * 31 + i, next(3) === 0 ? next(70_000) : next(100)), uid: next(70000) };
          else if (kind === "lnk") init[me] = { kind, symlinkTarget: "t".repeat(1 + next(200)) };
          else if (kind === "chr") init[me] = { kind, major: next(4096), minor: next(1 << 20) };
          else init[me] = { kind };
          if (next(4) === 0) init[me]!.xattrs = [{ key: new TextEncoder().encode(`user.k${next(3)}`), value: prng(i, next(2) ? 10 : 400) }];
        }
        const tree = new MemoryTree(init);
        const img = tmp.file(`r${t}.img`);
        await exportImage(new ExtImage(planExtImage(tree, { mtime: seed })), img);
        const res = e2fsck(img);
        expect(res.code, `seed ${seed}: ${res.out}`).toBe(0);
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe("an image with more groups than its few inodes fill", () => {
  it("has zero regions (unused inode tables) that export leaves as holes, and stays e2fsck-clean", async () => {
    const tmp = new TempDir();
    try {
      const size = 300 << 20; // three groups of 128 MiB, only 16 inodes per group
      const tree = new MemoryTree({
        1: { kind: "dir", entries: [{ name: "big", ino: 2 }, { name: "small", ino: 3 }] },
        2: { kind: "file", data: { size, read: (off, len) => new Uint8Array(len).fill(off % 251 === 0 ? 1 : 0) } },
        3: { kind: "file", data: "small" },
      });
      const dev = new ExtImage(planExtImage(tree, { mtime: 0 }));
      expect(dev.plan.geo.groups).toBe(3);
      const zero = dev.allocation(0, dev.size).filter((e) => e.zero);
      expect(zero.length).toBeGreaterThan(0);
      for (const z of zero) expect((await dev.readAt(z.offset, z.length)).every((b) => b === 0)).toBe(true);
      const img = tmp.file("z.img");
      await exportImage(dev, img);
      expect(statSync(img).size).toBe(dev.size);
      expect(statSync(img).blocks * 512).toBeLessThan(dev.size / 2); // zero regions and zero file chunks are holes
      expectClean(e2fsck(img));
    } finally {
      tmp.cleanup();
    }
  });
});
