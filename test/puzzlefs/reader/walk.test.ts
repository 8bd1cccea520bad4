import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { I, rootfs, writeImage } from "../../helpers/test-image.ts";
import { sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";
import type { Inode } from "../../../src/puzzlefs/format/types.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const txt = (b: Uint8Array) => Buffer.from(b).toString("latin1");
let n = 0;

async function open(layers: Inode[][], chunks: Array<{ data: Uint8Array; listed?: boolean }> = [], o: { maxDepth?: number } = {}) {
  const dir = tmp.make();
  await writeImage(dir, "t", rootfs(layers), chunks, { seed: ++n });
  return openImage(dir, "t", o);
}

async function refused(layers: Inode[][], code: string, re: RegExp, chunks: Array<{ data: Uint8Array; listed?: boolean }> = [], o: { maxDepth?: number } = {}) {
  try {
    await open(layers, chunks, o);
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(code);
    expect((e as PfsError).message).toMatch(re);
    return;
  }
  throw new Error("expected the image to be refused");
}

const R = /^rootfs blob sha256:[0-9a-f]{64} /;
const src = (re: string) => new RegExp(R.source + re);

describe("reader/walk: bad trees are refused at open, naming the object", () => {
  it("a directory cycle", async () => {
    await refused([[I.dir(1, [["a", 2]]), I.dir(2, [["back", 1]])]], ErrorCode.FORMAT, src('directory inode 2: entry "back" reaches directory inode 1 a second time \\(a cycle or a directory hard link\\)'));
    await refused([[I.dir(1, [["a", 2]]), I.dir(2, [["self", 2]])]], ErrorCode.FORMAT, src('directory inode 2: entry "self" reaches directory inode 2 a second time'));
  });

  it("a directory reachable twice", async () => {
    await refused([[I.dir(1, [["a", 2], ["b", 2]]), I.dir(2, [])]], ErrorCode.FORMAT, src('directory inode 1: entry "b" reaches directory inode 2 a second time'));
  });

  it.each([
    ["", "is empty"],
    [".", 'is "."'],
    ["..", 'is ".."'],
    ["a/b", 'contains "/"'],
    ["a\0b", "contains a NUL byte"],
  ])("a dir entry named %j", async (name, why) => {
    await refused([[I.dir(1, [[name, 2]]), I.plain(2, "fifo")]], ErrorCode.FORMAT, src(`directory inode 1: entry name ${JSON.stringify(name).replace(/[.\\]/g, "\\$&")} ${why.replace(/[."]/g, "\\$&")}`));
  });

  it("a name listed twice in one directory", async () => {
    await refused([[I.dir(1, [["x", 2], ["x", 3]]), I.plain(2, "fifo"), I.plain(3, "fifo")]], ErrorCode.FORMAT, src('directory inode 1: entry name "x" appears twice'));
  });

  it("an inode number that no layer has", async () => {
    await refused([[I.dir(1, [["ghost", 99]])]], ErrorCode.FORMAT, src('directory inode 1: entry "ghost" points at inode 99, which no layer has'));
  });

  it("no root, a whiteout root, a non-directory root", async () => {
    await refused([[I.dir(2, [])]], ErrorCode.FORMAT, /^rootfs blob sha256:[0-9a-f]{64}: no layer has the root inode 1$/);
    await refused([[I.wht(1)], [I.dir(1, [])]], ErrorCode.FORMAT, /^rootfs blob sha256:[0-9a-f]{64}: the root inode 1 is a whiteout$/);
    await refused([[I.plain(1, "fifo")]], ErrorCode.FORMAT, /^rootfs blob sha256:[0-9a-f]{64}: the root inode 1 is a fifo, not a directory$/);
  });

  it("absurd directory nesting (LIMIT)", async () => {
    const chain = Array.from({ length: 60 }, (_, i) => I.dir(i + 1, i < 59 ? [["d", i + 2]] : []));
    await refused([chain], ErrorCode.LIMIT, /directory inode 51 entry "d": exceeds limit \(directory nesting deeper than 50\)/, [], { maxDepth: 50 });
    expect((await open([chain], [], { maxDepth: 59 })).tree.nodeCount).toBe(60);
    // The default limit.
    const deep = Array.from({ length: 4100 }, (_, i) => I.dir(i + 1, i < 4099 ? [["d", i + 2]] : []));
    await refused([deep], ErrorCode.LIMIT, /directory inode 4097 entry "d": exceeds limit \(directory nesting deeper than 4096\)/);
  });

  it("a deep chain (10 000 directories) is walked without recursion", async () => {
    const chain = Array.from({ length: 10_000 }, (_, i) => I.dir(i + 1, i < 9_999 ? [["d", i + 2]] : []));
    expect((await open([chain], [], { maxDepth: 20_000 })).tree.nodeCount).toBe(10_000);
  });

  it("chunk offset or length beyond an uncompressed blob the manifest lists", async () => {
    const data = new Uint8Array(100).fill(7);
    const hex = sha256hex(data);
    await refused([[I.dir(1, [["f", 2]]), I.file(2, [{ hex, offset: 50, len: 51 }])]], ErrorCode.FORMAT, src(`file inode 2 chunk 0 @0x[0-9a-f]+: bytes \\[50, 101\\) lie beyond the end of blob sha256:${hex}: expected ≤ 100, got 101`), [{ data }]);
    // Not listed in the manifest (e.g. a lower layer's chunk): caught at read time instead.
    const img = await open([[I.dir(1, [["f", 2]]), I.file(2, [{ hex, offset: 50, len: 51 }])]], [{ data, listed: false }]);
    await expect(img.tree.readFile(2, 0, 1)).rejects.toThrow(new RegExp(`file inode 2 chunk 0: bytes \\[50, 101\\) lie beyond the end of blob sha256:${hex}`));
  });

  it("a chunk digest that is not 32 bytes; a symlink without a target; a device number beyond 32 bits", async () => {
    await refused([[I.dir(1, [["f", 2]]), I.file(2, [{ hex: "abcd", len: 1 }])]], ErrorCode.FORMAT, src("file inode 2 chunk 0 @0x[0-9a-f]+: blob digest is not 32 bytes"));
    await refused([[I.dir(1, [["l", 2]]), { ...I.lnk(2, "x"), additional: null }]], ErrorCode.FORMAT, src("symlink inode 2 @0x[0-9a-f]+: has no target"));
    await refused([[I.dir(1, [["c", 2]]), I.dev(2, "chr", 2 ** 33, 1)]], ErrorCode.FORMAT, src("device inode 2 @0x[0-9a-f]+: device number 8589934592:1 does not fit 32 bits"));
  });
});

describe("reader/walk: merging the layer stack (spec §2.3–2.4)", () => {
  it("the top layer wins, whiteouts hide names and are dropped from listings; unreachable inodes are not nodes", async () => {
    const data = new TextEncoder().encode("newold");
    const hex = sha256hex(data);
    const top = [I.dir(1, [["gone", 3], ["f", 2]]), I.file(2, [{ hex, len: 3 }], { uid: 5 }), I.wht(3)];
    const base = [I.dir(1, [["f", 2], ["gone", 3]]), I.file(2, [{ hex, offset: 3, len: 3 }]), I.plain(3, "fifo"), I.plain(4, "sock")];
    const t = (await open([top, base], [{ data }])).tree;
    expect(t.node(1).entries!.map((e) => [txt(e.name), e.ino])).toEqual([["f", 2]]);
    expect([t.node(2).uid, Buffer.from(await t.readFile(2, 0, 10)).toString()]).toEqual([5, "new"]);
    expect(t.nodeCount).toBe(2);
    expect(() => t.node(3)).toThrow(/inode 3: not found/);
    expect(() => t.node(4)).toThrow(/inode 4: not found/);
  });

  it("lookBelow merges the same directory's lower-layer entries after the upper ones (upper names win, whiteouts hide)", async () => {
    const top = [I.dir(1, [["b", 3], ["x", 5]], { lookBelow: true }), I.plain(3, "sock"), I.wht(5)];
    const base = [I.dir(1, [["a", 2], ["b", 4], ["x", 5]]), I.plain(2, "fifo"), I.plain(4, "fifo"), I.plain(5, "fifo")];
    const t = (await open([top, base])).tree;
    expect(t.node(1).entries!.map((e) => [txt(e.name), e.ino, t.node(e.ino).kind])).toEqual([
      ["b", 3, "sock"],
      ["a", 2, "fifo"],
    ]);
    // Without lookBelow (what upstream writes) the top list is complete.
    const t2 = (await open([[I.dir(1, [["b", 3]]), I.plain(3, "sock")], base])).tree;
    expect(t2.node(1).entries!.map((e) => txt(e.name))).toEqual(["b"]);
  });

  it("hard links: one node for all names; nodeCount counts distinct nodes", async () => {
    const t = (await open([[I.dir(1, [["a", 2], ["b", 2], ["d", 3]]), I.plain(2, "fifo"), I.dir(3, [["c", 2]])]])).tree;
    expect(t.nodeCount).toBe(3);
  });

  it("every inode kind, setuid/setgid/sticky bits and 32-bit uid/gid survive", async () => {
    const t = (
      await open([
        [
          I.dir(1, [["c", 2], ["b", 3], ["p", 4], ["s", 5], ["u", 6], ["l", 7]], { permissions: 0o1777 }),
          I.dev(2, "chr", 4, 64, { permissions: 0o6755 }),
          I.dev(3, "blk", 259, 0x12345),
          I.plain(4, "fifo"),
          I.plain(5, "sock", { uid: 0xffffffff, gid: 0xfffffffe }),
          I.plain(6, "unknown"),
          I.lnk(7, "/abs/target", { additional: { xattrs: [{ key: new TextEncoder().encode("trusted.x"), val: new Uint8Array() }], symlinkTarget: new TextEncoder().encode("/abs/target") } }),
        ],
      ])
    ).tree;
    const n = (i: number) => t.node(i);
    expect([n(1).permissions, n(2).permissions, n(2).kind, n(2).major, n(2).minor]).toEqual([0o1777, 0o6755, "chr", 4, 64]);
    expect([n(3).kind, n(3).major, n(3).minor, n(4).kind, n(6).kind]).toEqual(["blk", 259, 0x12345, "fifo", "unknown"]);
    expect([n(5).kind, n(5).uid, n(5).gid]).toEqual(["sock", 0xffffffff, 0xfffffffe]);
    expect([n(7).kind, txt(n(7).symlinkTarget!), n(7).size, n(7).xattrs.map((x) => [txt(x.key), x.value.length])]).toEqual(["lnk", "/abs/target", 11, [["trusted.x", 0]]]);
  });
});

describe("reader/walk: non-UTF-8 names", () => {
  it("are kept as raw bytes", async () => {
    const name = Uint8Array.from([0x66, 0xff, 0xfe, 0x0a]);
    const t = (await open([[I.dir(1, [[name, 2]]), I.plain(2, "fifo")]])).tree;
    expect(Buffer.from(t.node(1).entries![0]!.name)).toEqual(Buffer.from(name));
  });
});

describe("reader/walk: mutated rootfs messages never crash the reader", () => {
  it("open, node() of every reachable inode and reading every file either work or fail with a PfsError", async () => {
    const { ROOTFS_FIXTURES, fixtureDir } = await import("../../helpers/oci-fixtures.ts");
    const { rng } = await import("../../helpers/capnp-writer.ts");
    const { RootfsView } = await import("../../../src/puzzlefs/format/view.ts");
    const { LayerStack } = await import("../../../src/puzzlefs/reader/layers.ts");
    const { buildTreeIndex } = await import("../../../src/puzzlefs/reader/walk.ts");
    const { ImageTree } = await import("../../../src/puzzlefs/reader/tree.ts");
    const { ChunkCache } = await import("../../../src/puzzlefs/reader/chunks.ts");
    const { BlobStore } = await import("../../../src/oci/blobs.ts");
    const chunks = new ChunkCache(new BlobStore(fixtureDir("mixed-noop")));
    const r = rng(7);
    const outcomes = { ok: 0, refused: 0 };
    for (let k = 0; k < 1500; k++) {
      const src = ROOTFS_FIXTURES[k % 2 === 0 ? 4 : 1 + (k % 4)]![1];
      const b = Uint8Array.from(src);
      for (let f = 1 + Math.floor(r() * 3); f > 0; f--) b[8 + Math.floor(r() * (b.length - 8))] = Math.floor(r() * 256);
      try {
        const stack = new LayerStack(new RootfsView(b, "rootfs"));
        const tree = new ImageTree(stack, buildTreeIndex(stack, { maxDepth: 64 }), chunks);
        const todo = [1];
        const seen = new Set<number>();
        while (todo.length) {
          const ino = todo.pop()!;
          if (seen.has(ino)) continue;
          seen.add(ino);
          const n = tree.node(ino);
          for (const e of n.entries ?? []) todo.push(e.ino);
          if (n.kind === "file") await tree.readFile(ino, 0, Math.min(n.size, 1 << 20)).catch((e: unknown) => {
            if (!(e instanceof PfsError)) throw e;
          });
        }
        expect(seen.size).toBe(tree.nodeCount);
        outcomes.ok++;
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        outcomes.refused++;
      }
    }
    expect(outcomes.refused).toBeGreaterThan(100);
    expect(outcomes.ok).toBeGreaterThan(100);
  });
});
