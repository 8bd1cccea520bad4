import { afterEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { FIXTURES, blobPath, fixtureDir, flipByte, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { I, rootfs, sha256hex, writeImage } from "../../helpers/test-image.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());
const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));
const CHUNK1 = "b365f33bc1b552abe814996cba178bba60758ef1e6853128051d4ad3c8832b03"; // 2nd chunk of mixed-noop

function counterStream(n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < n; i++) {
    const be = Buffer.alloc(4);
    be.writeUInt32BE(i);
    parts.push(createHash("sha256").update("puzzlefs-fixture").update(be).digest());
  }
  return Buffer.concat(parts).subarray(0, n);
}
const BIG = counterStream(300000);

async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<PfsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(code);
    expect((e as PfsError).message).toMatch(re);
    return e as PfsError;
  }
  throw new Error("expected a rejection");
}

describe("reader/tree readFile", () => {
  it("reads big.bin (4 chunks, the first shared with other files) at every chunk boundary ±1 and at random ranges", async () => {
    const t = (await openImage(fixtureDir("mixed-noop"), "mixed")).tree;
    const bounds = [0, 152551, 152551 + 72716, 152551 + 72716 + 58762, 300000];
    for (const b of bounds) {
      for (const off of [b - 1, b, b + 1]) {
        if (off < 0 || off > 300000) continue;
        for (const len of [0, 1, 2, 3, 4096, 100000, 400000]) {
          const got = await t.readFile(7, off, len);
          expect(Buffer.from(got).equals(BIG.subarray(off, Math.min(300000, off + len))), `read(${off}, ${len})`).toBe(true);
        }
      }
    }
    let x = 12345;
    for (let i = 0; i < 200; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const off = x % 300001;
      const len = (x >>> 3) % 150000;
      expect(Buffer.from(await t.readFile(7, off, len)).equals(BIG.subarray(off, off + len))).toBe(true);
    }
    expect((await t.readFile(7, 300000, 10)).length).toBe(0);
    expect((await t.readFile(7, 10 ** 12, 10)).length).toBe(0);
  });

  it("readFileInto: the same bytes straight into a caller's buffer, bytes past the file end untouched, cached chunks served synchronously", async () => {
    const t = (await openImage(fixtureDir("mixed-noop"), "mixed")).tree;
    let x = 777;
    for (let i = 0; i < 100; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const off = x % 300001;
      const dest = Buffer.alloc((x >>> 5) % 200000, 0xee);
      const n = await t.readFileInto(7, off, dest);
      const want = BIG.subarray(off, off + dest.length);
      expect(n).toBe(want.length);
      expect(dest.subarray(0, n).equals(want), `readFileInto(${off}, ${dest.length})`).toBe(true);
      expect(dest.subarray(n).every((b) => b === 0xee)).toBe(true);
    }
    // Everything is cached now: a read completes without waiting for any load.
    const loads = t.chunks.stats.loads;
    const dest = Buffer.alloc(300000);
    expect(await t.readFileInto(7, 0, dest)).toBe(300000);
    expect(dest.equals(BIG)).toBe(true);
    expect(t.chunks.stats.loads).toBe(loads);
  });

  it("compressed chunk: reads at every zstd frame boundary ±1 are right and decode only the frames they touch", async () => {
    const t = (await openImage(fixtureDir("sekien-zstd"), "test")).tree;
    const st = t.chunks.stats;
    for (let k = 0; k <= 27; k++) {
      const b = Math.min(k * 4096, 109466);
      for (const off of [b - 1, b, b + 1]) {
        if (off < 0 || off > 109466) continue;
        for (const len of [1, 2, 4097]) {
          const before = st.framesDecoded;
          const n = Math.min(len, 109466 - off);
          const got = await t.readFile(2, off, len);
          expect(Buffer.from(got).equals(JPG.subarray(off, off + n)), `read(${off}, ${len})`).toBe(true);
          const frames = n === 0 ? 0 : Math.floor((off + n - 1) / 4096) - Math.floor(off / 4096) + 1;
          expect(st.framesDecoded - before).toBe(frames);
        }
      }
    }
    expect(st.loads).toBe(1);
  });

  it("is lazy: opening and walking every node opens no chunk blob; reading opens each chunk once", async () => {
    const img = await openImage(fixtureDir("mixed-noop"), "mixed");
    const opened: string[] = [];
    img.layout.blobs.onOpen = (h) => opened.push(h);
    const t = img.tree;
    for (let ino = 1; ino <= 10; ino++) if (ino !== 3) t.node(ino);
    expect(opened).toEqual([]);
    expect(img.layout.blobs.stats.opens).toBe(2); // manifest + rootfs
    await t.readFile(2, 0, 6);
    expect(opened).toEqual(["93d2e0fcea0a6609216c336974e848617e5ebec88ad592a78cbfa565e719d731"]);
    await t.readFile(6, 0, 3); // same chunk: cache hit
    await t.readFile(7, 250000, 10); // in the third chunk only
    expect(opened).toEqual(["93d2e0fcea0a6609216c336974e848617e5ebec88ad592a78cbfa565e719d731", "725c941c1e01620486802067f26f0ee5d042fe8b01a7c89d78432b140b5f865a"]);
  });

  it("concurrent reads of one chunk do one load", async () => {
    const img = await openImage(fixtureDir("sekien-zstd"), "test");
    const reads = await Promise.all(Array.from({ length: 10 }, (_, i) => img.tree.readFile(2, i * 10000, 5000)));
    reads.forEach((r, i) => expect(Buffer.from(r).equals(JPG.subarray(i * 10000, i * 10000 + 5000))).toBe(true));
    expect(img.tree.chunks.stats.loads).toBe(1);
    expect(img.tree.chunks.stats.shared).toBe(9);
    expect(img.layout.blobs.stats.opens).toBe(3);
  });

  it("a corrupt chunk fails only the reads that touch it (DIGEST naming the blob); restoring the blob makes it readable", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const good = join(tmp.make(), "good");
    copyFileSync(blobPath(dir, CHUNK1), good);
    flipByte(blobPath(dir, CHUNK1), 1000);
    const t = (await openImage(dir, "mixed")).tree;
    const e = await rejects(t.readFile(7, 150000, 10000), ErrorCode.DIGEST, new RegExp(`^chunk blob sha256:${CHUNK1}: sha256 mismatch: expected ${CHUNK1}, got [0-9a-f]{64}$`));
    expect(e.data.fileOffset).toBe(152551);
    // Reads of good data go on.
    expect(Buffer.from(await t.readFile(2, 0, 6)).toString()).toBe("hello\n");
    expect(Buffer.from(await t.readFile(7, 0, 152551)).equals(BIG.subarray(0, 152551))).toBe(true);
    expect(Buffer.from(await t.readFile(7, 230000, 1000)).equals(BIG.subarray(230000, 231000))).toBe(true);
    // Still bad on retry (failures are not cached, the blob is re-read and re-checked) ...
    await rejects(t.readFile(7, 160000, 1), ErrorCode.DIGEST, /sha256 mismatch/);
    // ... and fine once restored.
    copyFileSync(good, blobPath(dir, CHUNK1));
    expect(Buffer.from(await t.readFile(7, 0, 300000)).equals(BIG)).toBe(true);
  });

  it("the chunk cache honours its byte cap", async () => {
    const img = await openImage(fixtureDir("mixed-noop"), "mixed", { cacheBytes: 160_000 });
    const t = img.tree;
    expect(Buffer.from(await t.readFile(7, 0, 300000)).equals(BIG)).toBe(true);
    expect(t.chunks.stats.bytes).toBeLessThanOrEqual(160_000);
    expect(t.chunks.stats.evictions).toBeGreaterThan(0);
    expect(Buffer.from(await t.readFile(7, 0, 300000)).equals(BIG)).toBe(true);
  });

  it("finds the chunk of an offset by binary search: a 1000-chunk file read at its end loads one chunk", async () => {
    const dir = tmp.make();
    const blob = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const hex = sha256hex(blob);
    const other = new TextEncoder().encode("x".repeat(50));
    const ohex = sha256hex(other);
    const chunks = Array.from({ length: 1000 }, (_, i) => (i === 500 ? { hex: ohex, offset: 0, len: 50 } : { hex, offset: i, len: 1 }));
    await writeImage(dir, "t", rootfs([[I.dir(1, [["f", 2]]), I.file(2, chunks)]]), [{ data: blob }, { data: other }]);
    const t = (await openImage(dir, "t")).tree;
    expect(t.node(2).size).toBe(1049);
    expect(Array.from(await t.readFile(2, 1048, 1))).toEqual([999 & 0xff]);
    expect(t.chunks.stats.loads + t.chunks.stats.hits).toBe(1);
    expect(Buffer.from(await t.readFile(2, 498, 54)).toString("latin1")).toBe(String.fromCharCode(498 & 0xff, 499 & 0xff) + "x".repeat(50) + String.fromCharCode(501 & 0xff, 502 & 0xff));
  });

  it("argument errors: not a file, unknown inode, negative offsets", async () => {
    const t = (await openImage(fixtureDir("mixed-noop"), "mixed")).tree;
    await rejects(t.readFile(4, 0, 1), ErrorCode.USAGE, /inode 4 is not a regular file/);
    await rejects(t.readFile(3, 0, 1), ErrorCode.NOT_FOUND, /inode 3: not found/);
    await rejects(t.readFile(99, 0, 1), ErrorCode.NOT_FOUND, /inode 99: not found/);
    await rejects(t.readFile(2, -1, 1), ErrorCode.USAGE, /non-negative integers/);
    expect((await t.readFile(7, 0, 2 ** 40)).length).toBe(300000); // length is clipped to the file
    expect(() => t.node(1.5)).toThrow(/not found/);
    expect(t.kind(10)).toBe("chr");
    expect(t.lookup(1, new TextEncoder().encode("dir"))).toBe(4);
    expect(t.lookup(1, new TextEncoder().encode("nope"))).toBeUndefined();
  });

  it("a single read larger than MAX_READ is refused (LIMIT) rather than allocating it", async () => {
    const dir = tmp.make();
    const data = new Uint8Array(10);
    await writeImage(dir, "t", rootfs([[I.dir(1, [["huge", 2]]), I.file(2, [{ hex: sha256hex(data), len: 2 ** 33 }])]]), [{ data, listed: false }]);
    const t = (await openImage(dir, "t")).tree;
    expect(t.node(2).size).toBe(2 ** 33);
    await rejects(t.readFile(2, 0, 2 ** 31), ErrorCode.LIMIT, /^readFile\(2, 0, 2147483648\): exceeds limit \(one read returns at most 1073741824 bytes; read in pieces\)$/);
    await rejects(t.readFile(2, 2 ** 32, 4096), ErrorCode.FORMAT, /lie beyond the end of blob/);
  });

  it("a long-lived tree is not starved by the traversal budget", async () => {
    const t = (await openImage(fixtureDir("mixed-noop"), "mixed", { limits: { traversalWords: 400 } })).tree;
    for (let i = 0; i < 2000; i++) t.node(1 + (i % 2));
    expect(t.node(4).entries!.length).toBe(4);
  });
});
