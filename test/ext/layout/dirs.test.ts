import { describe, expect, it } from "vitest";
import { ErrorCode, isPfsError } from "../../../src/common/errors.ts";
import { DX_HASH } from "../../../src/ext/constants.ts";
import { DirPlanner, LEAF_CAPACITY, LINEAR_CAPACITY, NODE_LIMIT, ROOT_LIMIT, checkName, htreeBlocks, leafHash, type Htree } from "../../../src/ext/layout/dirs.ts";
import { direntLen } from "../../../src/ext/struct/dirent.ts";

const enc = new TextEncoder();

describe("directory planning", () => {
  it("has the kernel's capacities for 4 KiB blocks", () => {
    expect([LINEAR_CAPACITY, LEAF_CAPACITY, ROOT_LIMIT, NODE_LIMIT]).toEqual([4060, 4084, 507, 510]);
  });

  it("keeps a directory linear while it fits one block, else builds a sorted htree", () => {
    const p = new DirPlanner(DX_HASH.HALF_MD4_UNSIGNED, Uint32Array.of(1, 2, 3, 4));
    const names = Array.from({ length: 1000 }, (_, i) => enc.encode(`name-${i}`));
    const fit = Math.floor(LINEAR_CAPACITY / direntLen(8));
    expect(p.plan(10, 10, (i) => names[i]!, "/a")).toBe(1);
    expect(p.htrees.has(10)).toBe(false);
    const blocks = p.plan(11, 1000, (i) => names[i]!, "/b");
    const h = p.htrees.get(11)!;
    expect(blocks).toBe(htreeBlocks(h));
    expect(h.levels).toBe(0);
    expect(h.leafStart[0]).toBe(0);
    expect(h.leafStart[h.leaves]).toBe(1000);
    for (let k = 1; k < 1000; k++) expect(h.hashes[k]! >= h.hashes[k - 1]!).toBe(true);
    expect(new Set(h.perm).size).toBe(1000);
    for (let j = 0; j < h.leaves; j++) {
      let used = 0;
      for (let k = h.leafStart[j]!; k < h.leafStart[j + 1]!; k++) used += direntLen(names[h.perm[k]!]!.length);
      expect(used).toBeLessThanOrEqual(LEAF_CAPACITY);
    }
    expect(fit).toBeGreaterThan(10);
  });

  it("sets bit 0 on a leaf's index hash when it continues a run of equal hashes", () => {
    const h: Htree = { levels: 0, nodes: 0, leaves: 3, perm: Uint32Array.of(0, 1, 2, 3), hashes: Uint32Array.of(2, 8, 8, 20), leafStart: Uint32Array.of(0, 2, 3, 4) };
    expect([leafHash(h, 0), leafHash(h, 1), leafHash(h, 2)]).toEqual([0, 9, 20]);
  });

  it("refuses duplicates in linear and htree directories, and bad names", () => {
    const p = new DirPlanner(DX_HASH.HALF_MD4_UNSIGNED, Uint32Array.of(1, 2, 3, 4));
    const dup = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => enc.encode(i === n - 1 ? "same" : i === 0 ? "same" : `x${i}`));
    for (const n of [3, 500]) {
      const names = dup(n);
      expect(() => p.plan(20 + n, n, (i) => names[i]!, "/d")).toThrow(/"same" appears twice/);
    }
    for (const bad of ["", ".", "..", "a/b", "a\0b", "x".repeat(256)]) {
      let err: unknown;
      try {
        checkName(enc.encode(bad), "/dir");
      } catch (e) {
        err = e;
      }
      expect(isPfsError(err, ErrorCode.UNSUPPORTED), JSON.stringify(bad)).toBe(true);
    }
    expect(() => checkName(Uint8Array.of(0xff, 0x2e), "/")).not.toThrow();
    expect(() => checkName(enc.encode("..."), "/")).not.toThrow();
  });
});
