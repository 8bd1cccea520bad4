import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { OciLayout } from "../../../src/oci/layout.ts";
import { baseLookup, openBase, sameLayer } from "../../../src/puzzlefs/builder/base.ts";
import type { Inode } from "../../../src/puzzlefs/format/types.ts";
import { fixtureDir, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { I, writeImage } from "../../helpers/test-image.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

const enc = new TextEncoder();
const path = (...c: string[]) => c.map((s) => enc.encode(s));
const names = (r: ReturnType<ReturnType<typeof baseLookup>["lookup"]>) => r?.entries?.map((e) => [Buffer.from(e.name).toString(), Number(e.ino)]);

describe("baseLookup (spec §2.4 semantics over decoded layers)", () => {
  // bottom: / = {a:2, d:3}, /d = {x:4}; top: / = {a:2, d:3, gone:5 (whiteout)}, /d = {x:4, y:6}, a replaced.
  const bottom: Inode[] = [I.dir(1, [["a", 2], ["d", 3]]), I.file(2, []), I.dir(3, [["x", 4]]), I.file(4, [])];
  const top: Inode[] = [
    I.dir(1, [["gone", 5], ["a", 2], ["d", 3]]),
    I.plain(2, "fifo"),
    I.dir(3, [["x", 4], ["y", 6]]),
    I.wht(5),
    I.lnk(6, "x"),
  ];
  const b = baseLookup([top, bottom]);

  it("resolves paths through the top layer first, falling back to lower layers per ino", () => {
    expect(b.maxInode).toBe(6n);
    expect(names(b.lookup([]))).toEqual([["gone", 5], ["a", 2], ["d", 3]]);
    expect(b.lookup(path("a"))).toEqual({ ino: 2n, entries: null });
    expect(names(b.lookup(path("d")))).toEqual([["x", 4], ["y", 6]]);
    expect(b.lookup(path("d", "x"))).toEqual({ ino: 4n, entries: null }); // only in the bottom layer
  });

  it("is null for missing names, paths through non-directories, and whited-out inodes", () => {
    expect(b.lookup(path("nope"))).toBeNull();
    expect(b.lookup(path("a", "b"))).toBeNull();
    expect(b.lookup(path("gone"))).toBeNull();
    expect(b.lookup(path("d", "y", "z"))).toBeNull();
  });

  it("max_inode is the largest last ino over the layers, at least 1; a duplicate ino in one layer prefers the live inode", () => {
    expect(baseLookup([[]]).maxInode).toBe(1n);
    expect(baseLookup([[I.dir(1, [])], [I.dir(1, []), I.file(9, [])]]).maxInode).toBe(9n);
    const dup = baseLookup([[I.dir(1, [["f", 2]]), I.wht(2), I.file(2, [])]]);
    expect(dup.lookup(path("f"))).toEqual({ ino: 2n, entries: null });
  });
});

describe("sameLayer", () => {
  it("compares every field, bytes by value", () => {
    const a = [I.dir(1, [["f", 2]]), I.file(2, [{ hex: "ab".repeat(32), len: 5 }]), I.lnk(3, "t"), I.dev(4, "chr", 1, 3)];
    const copy = (): Inode[] => structuredClone(a);
    expect(sameLayer(a, copy())).toBe(true);
    const edits: Array<(l: Inode[]) => void> = [
      (l) => l.pop(),
      (l) => (l[0]!.uid = 1),
      (l) => ((l[0]!.mode as { entries: Array<{ name: Uint8Array }> }).entries[0]!.name = enc.encode("g")),
      (l) => ((l[1]!.mode as { chunks: Array<{ len: bigint }> }).chunks[0]!.len = 6n),
      (l) => (l[2]!.additional!.symlinkTarget = enc.encode("u")),
      (l) => (l[3]!.mode = { kind: "blk", major: 1n, minor: 3n }),
      (l) => (l[2]!.additional!.xattrs = [{ key: enc.encode("user.x"), val: enc.encode("") }]),
    ];
    for (const edit of edits) {
      const b = copy();
      edit(b);
      expect(sameLayer(a, b)).toBe(false);
    }
  });
});

describe("openBase", () => {
  it("decodes the base rootfs of a tag", async () => {
    const base = await openBase(await OciLayout.open(fixtureDir("sekien-delta-noop")), "test2");
    expect(base.rootfs.metadatas).toHaveLength(2);
    expect(base.lookup.maxInode).toBe(3n);
    expect(base.lookup.lookup(path("foo"))).toEqual({ ino: 3n, entries: [] });
  });

  it("names a missing tag as the base layer, with the tags there are", async () => {
    const err = await openBase(await OciLayout.open(fixtureDir("sekien-noop")), "nope").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PfsError);
    expect((err as PfsError).code).toBe(ErrorCode.NOT_FOUND);
    expect((err as PfsError).message).toMatch(/^base layer: tag "nope"/);
    expect((err as PfsError).hint).toMatch(/available tags: test/);
  });

  it("refuses a base whose rootfs has another manifestVersion", async () => {
    const dir = join(tmp.make(), "oci");
    await writeImage(dir, "old", { metadatas: [{ inodes: [I.dir(1, [])] }], fsVerityData: [], manifestVersion: 2n });
    const err = await openBase(await OciLayout.open(dir), "old").catch((e: unknown) => e);
    expect((err as PfsError).code).toBe(ErrorCode.FORMAT);
    expect((err as PfsError).message).toMatch(/invalid image version.*expected 3, got 2/);
  });
});
