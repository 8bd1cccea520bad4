import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryTree, type MemoryNodeInit } from "../../../src/puzzlefs/tree.ts";
import { DX_HASH } from "../../../src/ext/constants.ts";
import { dirHash } from "../../../src/ext/hash.ts";
import { ExtImage, exportImage, planExtImage } from "../../../src/ext/index.ts";
import { LEAF_CAPACITY, LINEAR_CAPACITY } from "../../../src/ext/layout/dirs.ts";
import { resolveOptions } from "../../../src/ext/layout/options.ts";
import { direntLen } from "../../../src/ext/struct/dirent.ts";
import { TempDir, debugfs, e2fsck, withMount } from "../helpers.ts";

const OPTS = { mtime: 0, digest: "sha256:dirs" };
const enc = new TextEncoder();

/** Two names with the same htree hash under OPTS' seed (birthday search over 31-bit hashes). */
function collidingPair(): [string, string] {
  const seed = resolveOptions(OPTS).hashSeed;
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const name = `collide-${i}`;
    const h = dirHash(DX_HASH.HALF_MD4_UNSIGNED, enc.encode(name), seed).hash;
    const other = seen.get(h);
    if (other !== undefined) return [other, name];
    seen.set(h, name);
  }
}

describe("directory blocks", () => {
  const tmp = new TempDir();
  const img = tmp.file("dirs.img");
  const BIG = 100_000;
  const MANY = 65_001;
  const bigName = (i: number): string => `a-rather-long-entry-name-so-the-htree-needs-two-levels-${i}`;
  let pair: [string, string];
  /** Names with bytes ≥ 0x80 (not UTF-8): the signed and unsigned hash variants differ on them. */
  const highNames = Array.from({ length: 700 }, (_, i) => Buffer.concat([Buffer.from(`h${i}-`), Buffer.from([0x80 + (i % 128), 0xff, 0xe9])]));
  let fits: string[];

  beforeAll(async () => {
    const nodes: Record<number, MemoryNodeInit> = {};
    let ino = 10;
    const file = (): number => {
      nodes[ino] = { kind: "file", data: "" };
      return ino++;
    };
    const big = Array.from({ length: BIG }, (_, i) => ({ name: bigName(i), ino: file() }));
    const many = Array.from({ length: MANY }, (_, i) => {
      nodes[ino] = { kind: "dir" };
      return { name: `d${i}`, ino: ino++ };
    });
    // Exactly fills one linear block.
    fits = [];
    for (let used = 0; used + direntLen(40) <= LINEAR_CAPACITY - direntLen(12); used += direntLen(40)) fits.push(`f${"x".repeat(39 - String(fits.length).length)}${fits.length}`);
    const rest = LINEAR_CAPACITY - fits.length * direntLen(40);
    fits.push("z".repeat(rest - 8));
    // A collision pair straddling the first leaf boundary: fillers with lower hashes, then A | B.
    pair = collidingPair();
    const seed = resolveOptions(OPTS).hashSeed;
    const h = dirHash(DX_HASH.HALF_MD4_UNSIGNED, enc.encode(pair[0]), seed).hash;
    const low: string[] = [];
    let used = direntLen(pair[0].length);
    for (let i = 0; used + direntLen(20) <= LEAF_CAPACITY; i++) {
      const n = `filler-${String(i).padStart(13, "0")}`;
      if (dirHash(DX_HASH.HALF_MD4_UNSIGNED, enc.encode(n), seed).hash < h) {
        low.push(n);
        used += direntLen(n.length);
      }
    }
    expect(LEAF_CAPACITY - used).toBeLessThan(direntLen(pair[1].length));
    const high = Array.from({ length: 50 }, (_, i) => `zz-${i}`).filter((n) => dirHash(DX_HASH.HALF_MD4_UNSIGNED, enc.encode(n), seed).hash > h);
    const coll = [...low, ...pair, ...high].map((name) => ({ name, ino: file() }));
    nodes[2] = { kind: "dir", entries: big };
    nodes[3] = { kind: "dir", entries: many };
    nodes[4] = { kind: "dir", entries: fits.map((name) => ({ name, ino: file() })) };
    nodes[5] = { kind: "dir", entries: [...fits, "one-more"].map((name) => ({ name, ino: file() })) };
    nodes[6] = { kind: "dir", entries: coll };
    nodes[7] = { kind: "dir", entries: highNames.map((name) => ({ name, ino: file() })) };
    nodes[1] = { kind: "dir", entries: ["big", "many", "fits", "spills", "collide", "high"].map((name, i) => ({ name, ino: 2 + i })) };
    await exportImage(new ExtImage(planExtImage(new MemoryTree(nodes), OPTS)), img);
  });
  afterAll(() => tmp.cleanup());

  it("pass e2fsck -fn (htree order, depth, hash ranges, tails, dir_nlink)", () => {
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
  });

  it("a 100 000-entry directory gets a two-level htree that debugfs can walk", () => {
    const dump = debugfs(img, "htree_dump /big");
    expect(dump).toMatch(/Indirect levels: 1/);
    const names = [...dump.matchAll(/\d+ 0x[0-9a-f]+-[0-9a-f]+ \(\d+\) (\S+)/g)].map((m) => m[1]);
    expect(new Set(names).size).toBe(BIG);
    expect(dump).not.toMatch(/\b(corrupt|bad|invalid)\b/i);
  });

  it("the kernel finds entries by hash lookup and lists them all", async () => {
    await withMount(img, (d) => {
      for (let i = 0; i < BIG; i += 997) expect(statSync(join(d, "big", bigName(i))).isFile()).toBe(true);
      expect(() => statSync(join(d, "big", "not-there"))).toThrow(/ENOENT/);
      expect(readdirSync(join(d, "big")).length).toBe(BIG);
    });
  });

  it("a directory with more than 65000 subdirectories has nlink 1 (dir_nlink)", async () => {
    await withMount(img, (d) => {
      expect(statSync(join(d, "many")).nlink).toBe(1);
      expect(statSync(join(d, "many", "d64999")).nlink).toBe(2);
    });
  });

  it("an exactly full directory stays one linear block; one more entry makes a one-leaf htree", async () => {
    expect(debugfs(img, "stat /fits")).toMatch(/Size: 4096\b/);
    expect(debugfs(img, "stat /fits")).toMatch(/Flags: 0x80000\b/);
    expect(debugfs(img, "stat /spills")).toMatch(/Size: 8192\b/);
    expect(debugfs(img, "stat /spills")).toMatch(/Flags: 0x81000\b/);
    await withMount(img, (d) => {
      expect(readdirSync(join(d, "fits")).sort()).toEqual([...fits].sort());
      expect(readdirSync(join(d, "spills")).length).toBe(fits.length + 1);
    });
  });

  it("an htree over names with high bytes uses the unsigned hash the superblock declares: e2fsck and kernel lookups agree", async () => {
    expect(debugfs(img, "htree_dump /high")).toMatch(/Hash Version: 1/);
    await withMount(img, (d) => {
      const dir = Buffer.from(join(d, "high"));
      for (const n of highNames) expect(statSync(Buffer.concat([dir, Buffer.from("/"), n])).isFile()).toBe(true);
      expect(readdirSync(dir, { encoding: "buffer" }).length).toBe(highNames.length);
    });
  });

  it("a hash collision across a leaf boundary sets the continuation bit, and both names are found", async () => {
    const dump = debugfs(img, "htree_dump /collide");
    expect(dump).toMatch(/Entry #1: Hash 0x[0-9a-f]*[13579bdf], block/); // bit 0 set on leaf 1
    await withMount(img, (d) => {
      expect(statSync(join(d, "collide", pair[0])).isFile()).toBe(true);
      expect(statSync(join(d, "collide", pair[1])).isFile()).toBe(true);
    });
  });
});
