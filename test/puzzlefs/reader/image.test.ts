import { afterEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../../../src/puzzlefs/reader/path.ts";
import type { Tree, TreeNode } from "../../../src/puzzlefs/tree.ts";
import { fsVerityHex } from "../../../src/puzzlefs/verity.ts";
import { FIXTURES, blobPath, fixtureDir, flipByte, sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { writeImage } from "../../helpers/test-image.ts";
import { fc, test as fcTest } from "@fast-check/vitest";
import { decodeInput as decodeImageInput, exerciseImage } from "../../../fuzz/targets/image.ts";
import { mutated } from "../../helpers/mutate.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

const JPG_SHA = "d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed";
const txt = (b: Uint8Array | null) => (b ? Buffer.from(b).toString("utf8") : null);

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

/** Every node reachable from the root, by path, in entry order (BFS as upstream extract walks). */
function paths(t: Tree): Array<[string, TreeNode]> {
  const out: Array<[string, TreeNode]> = [["/", t.node(1)]];
  for (let i = 0; i < out.length; i++) {
    const [p, n] = out[i]!;
    for (const e of n.entries ?? []) out.push([`${p === "/" ? "" : p}/${txt(e.name)}`, t.node(e.ino)]);
  }
  return out;
}

const shaOf = async (t: Tree, n: TreeNode) => sha256hex(await t.readFile(n.ino, 0, n.size));

/** big.bin of mixed-noop: sha256("puzzlefs-fixture" ‖ u32be(i)) for i = 0, 1, … truncated to 300000 bytes (spec §6). */
function counterStream(n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < n; i++) {
    const be = Buffer.alloc(4);
    be.writeUInt32BE(i);
    parts.push(createHash("sha256").update("puzzlefs-fixture").update(be).digest());
  }
  return Buffer.concat(parts).subarray(0, n);
}

describe("reader/image: the four fixture layouts (spec §6)", () => {
  it.each([
    ["sekien-noop", "d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed", false],
    ["sekien-zstd", "d568d1505905ee36e66ef6f94f544a50f52c6a63574048da0cf351b8235ff42b", true],
  ])("%s: / (ino 1) holds SekienAkashita.jpg (ino 2), one chunk of 109466 bytes with the jpg's sha256", async (name, chunkHex, compressed) => {
    const img = await openImage(fixtureDir(name), "test");
    const t = img.tree;
    expect(img.layerCount).toBe(1);
    expect(t.nodeCount).toBe(2);
    expect(t.stack.maxIno()).toBe(2);
    const root = t.node(1);
    expect([root.kind, root.permissions, root.uid, root.gid]).toEqual(["dir", 0o755, 0, 0]);
    expect(root.entries!.map((e) => [e.ino, txt(e.name)])).toEqual([[2, "SekienAkashita.jpg"]]);
    const f = t.node(2);
    expect([f.kind, f.permissions, f.uid, f.gid, f.size]).toEqual(["file", 0o644, 0, 0, 109466]);
    const chunk = t.stack.view.fileChunks(t.stack.inode(t.stack.find(2)))!;
    expect(chunk.count).toBe(1);
    const blob = t.stack.view.chunkBlob(t.stack.view.msg.element(chunk, 0));
    expect([Buffer.from(blob.digest).toString("hex"), blob.compressed]).toEqual([chunkHex, compressed]);
    expect(await shaOf(t, f)).toBe(JPG_SHA);
    expect(lookupPath(t, "/SekienAkashita.jpg")).toBe(2);
  });

  it("sekien-delta-noop: tag test is the base image; test2 has 2 layers, max ino 3, / (2 entries), jpg ino 2, empty dir /foo ino 3", async () => {
    const base = await openImage(fixtureDir("sekien-delta-noop"), "test");
    expect([base.layerCount, base.tree.nodeCount, base.manifest.hex]).toEqual([1, 2, "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c"]);
    const img = await openImage(fixtureDir("sekien-delta-noop"), "test2");
    const t = img.tree;
    expect([img.layerCount, t.stack.maxIno(), t.nodeCount, img.rootfs.size]).toEqual([2, 3, 3, 704]);
    expect(paths(t).map(([p, n]) => [p, n.ino, n.kind, n.entries?.length ?? n.size])).toEqual([
      ["/", 1, "dir", 2],
      ["/SekienAkashita.jpg", 2, "file", 109466],
      ["/foo", 3, "dir", 0],
    ]);
    expect(await shaOf(t, t.node(2))).toBe(JPG_SHA);
    expect(t.node(3).permissions).toBe(0o755);
  });

  it("mixed-noop: every ino, name, mode, owner, size, content, xattr, device, hard link and symlink", async () => {
    const img = await openImage(fixtureDir("mixed-noop"), "mixed");
    const t = img.tree;
    const got = paths(t).map(([p, n]) => ({ p, ino: n.ino, kind: n.kind, perm: n.permissions.toString(8), uid: n.uid, gid: n.gid, size: n.size }));
    expect(got).toEqual([
      { p: "/", ino: 1, kind: "dir", perm: "755", uid: 0, gid: 0, size: 0 },
      { p: "/a.txt", ino: 2, kind: "file", perm: "644", uid: 1000, gid: 1000, size: 6 },
      { p: "/b", ino: 2, kind: "file", perm: "644", uid: 1000, gid: 1000, size: 6 },
      { p: "/dir", ino: 4, kind: "dir", perm: "2775", uid: 0, gid: 0, size: 0 },
      { p: "/link", ino: 5, kind: "lnk", perm: "777", uid: 0, gid: 0, size: 5 },
      { p: "/z.txt", ino: 6, kind: "file", perm: "644", uid: 0, gid: 0, size: 3 },
      { p: "/dir/big.bin", ino: 7, kind: "file", perm: "4755", uid: 0, gid: 0, size: 300000 },
      { p: "/dir/empty", ino: 8, kind: "file", perm: "600", uid: 0, gid: 0, size: 0 },
      { p: "/dir/fifo", ino: 9, kind: "fifo", perm: "644", uid: 0, gid: 0, size: 0 },
      { p: "/dir/null", ino: 10, kind: "chr", perm: "666", uid: 0, gid: 0, size: 0 },
    ]);
    expect(t.nodeCount).toBe(9); // b is a hard link to a.txt; ino 3 is the skipped number
    expect(() => t.node(3)).toThrow(/inode 3: not found/);
    expect(txt(await t.readFile(2, 0, 100))).toBe("hello\n");
    expect(txt(await t.readFile(6, 0, 100))).toBe("zzz");
    expect(t.node(6).xattrs.map((x) => [txt(x.key), txt(x.value)])).toEqual([["user.k", "v"]]);
    expect(txt(t.node(5).symlinkTarget)).toBe("a.txt");
    expect([t.node(10).major, t.node(10).minor]).toEqual([1, 3]);
    expect(Buffer.from(await t.readFile(7, 0, 300000)).equals(counterStream(300000))).toBe(true);
    expect((await t.readFile(8, 0, 10)).length).toBe(0);
    expect(t.logicalBytes).toBe(6 + 3 + 300000);
  });

  it("README example rootfs (upstream-produced): the values of spec §6, and lorem_ipsum.txt reads back", async () => {
    const dir = tmp.make();
    const rbytes = readFileSync(join(FIXTURES, "readme-example-rootfs.capnp"));
    const lorem = new TextEncoder().encode("Lorem ipsum dolor sit amet\n");
    const w = await writeImage(dir, "readme", rbytes, [{ data: lorem }]);
    expect(w.rootfsHex).toBe("9e2edc6917b65606b1112ac8663665dfd2d945cfea960ca595accf790922b910");
    const t = (await openImage(dir, "readme", { digest: w.manifestVerity })).tree;
    expect(paths(t).map(([p, n]) => [p, n.ino, n.kind, n.permissions, n.uid, n.gid, n.size])).toEqual([
      ["/", 1, "dir", 493, 1000, 1000, 0],
      ["/algorithms", 2, "dir", 509, 1000, 1000, 0],
      ["/lorem_ipsum.txt", 3, "file", 436, 1000, 1000, 27],
      ["/algorithms/binary-search.txt", 4, "file", 436, 1000, 1000, 0],
    ]);
    // With --digest pinned, the chunk's fs-verity is checked against fsVerityData (b7f1ee93… → 5b1434ad…f7a4).
    expect(txt(await t.readFile(3, 0, 27))).toBe("Lorem ipsum dolor sit amet\n");
    expect(fsVerityHex(lorem)).toMatch(/^5b1434ad.*f7a4$/);
  });

  it("skopeo copy oci:A:tag oci:B:tag of each fixture reads identically", async () => {
    for (const [name, tag] of [["mixed-noop", "mixed"], ["sekien-zstd", "test"], ["sekien-delta-noop", "test2"]] as const) {
      const out = join(tmp.make(), "copy");
      execFileSync("skopeo", ["copy", "-q", `oci:${fixtureDir(name)}:${tag}`, `oci:${out}:${tag}`]);
      const a = (await openImage(fixtureDir(name), tag)).tree;
      const b = (await openImage(out, tag)).tree;
      const pa = paths(a);
      expect(paths(b)).toEqual(pa);
      for (const [, n] of pa) if (n.kind === "file") expect(await shaOf(b, n)).toBe(await shaOf(a, n));
    }
  });
});

describe("reader/image: --digest (pinned manifest fs-verity, as upstream mount -d)", () => {
  it("accepts the right digest and refuses any other", async () => {
    const img = await openImage(fixtureDir("sekien-noop"), "test", { digest: "551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d" });
    expect(sha256hex(await img.tree.readFile(2, 0, 109466))).toBe(JPG_SHA);
    await rejects(openImage(fixtureDir("sekien-noop"), "test", { digest: "00".repeat(32) }), ErrorCode.DIGEST, /^manifest sha256:9514.* fs-verity mismatch: expected 0000/);
    await rejects(openImage(fixtureDir("sekien-noop"), "test", { digest: "xyz" }), ErrorCode.USAGE, /is not a hex sha256 fs-verity digest/);
  });

  it("a chunk whose fs-verity differs from fsVerityData, or has no entry, fails its read", async () => {
    const dir = tmp.make();
    const { I, rootfs } = await import("../../helpers/test-image.ts");
    const data = new TextEncoder().encode("chunk data");
    const hex = sha256hex(data);
    const wrong = rootfs([[I.dir(1, [["f", 2]]), I.file(2, [{ hex, len: 10 }])]], { verity: new Map([[hex, new Uint8Array(32).fill(1)]]) });
    const w = await writeImage(dir, "t", wrong, [{ data }]);
    const t = (await openImage(dir, "t", { digest: w.manifestVerity })).tree;
    await rejects(t.readFile(2, 0, 10), ErrorCode.DIGEST, new RegExp(`^chunk blob sha256:${hex}: fs-verity mismatch: expected 0101`));
    // Without --digest nothing but sha256 is checked.
    expect(txt(await (await openImage(dir, "t")).tree.readFile(2, 0, 10))).toBe("chunk data");
    const none = rootfs([[I.dir(1, [["f", 2]]), I.file(2, [{ hex, len: 10 }])]], { verity: new Map([["ab".repeat(32), new Uint8Array(32)]]) });
    const w2 = await writeImage(dir, "t2", none, [{ data }]);
    await rejects((await openImage(dir, "t2", { digest: w2.manifestVerity })).tree.readFile(2, 0, 1), ErrorCode.DIGEST, /missing verity data/);
  });

  it("a rootfs whose fs-verity differs from its annotation is refused", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const m = blobPath(dir, "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c");
    const body = readFileSync(m, "utf8").replace("e290f007303c17316bda16cb3323282dce725531cc8f1f006466c617b83ad57c", "ff".repeat(32));
    const hex = sha256hex(Buffer.from(body));
    writeFileSync(blobPath(dir, hex), body);
    writeFileSync(join(dir, "index.json"), readFileSync(join(dir, "index.json"), "utf8").replace("9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c", hex));
    await rejects(openImage(dir, "test", { digest: fsVerityHex(Buffer.from(body)) }), ErrorCode.DIGEST, /^rootfs blob sha256:d4c6.*: fs-verity mismatch: expected ffff/);
    await openImage(dir, "test"); // unpinned: fine
  });
});

describe("reader/image: bad input at open", () => {
  const NOOP_ROOTFS = "d4c6b84efac76b1abacb6e8ee42945f816fbedc612e21377b66fc0f829f83083";

  it("a rootfs blob whose sha256 does not match its name", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    flipByte(blobPath(dir, NOOP_ROOTFS), 100);
    await rejects(openImage(dir, "test"), ErrorCode.DIGEST, new RegExp(`^rootfs blob sha256:${NOOP_ROOTFS}: sha256 mismatch`));
  });

  it("a missing rootfs blob", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    rmSync(blobPath(dir, NOOP_ROOTFS));
    await rejects(openImage(dir, "test"), ErrorCode.NOT_FOUND, new RegExp(`^rootfs blob sha256:${NOOP_ROOTFS}: not found`));
  });

  it("a missing chunk blob fails the read of that file only", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    rmSync(blobPath(dir, JPG_SHA));
    const t = (await openImage(dir, "test")).tree;
    expect(t.node(2).size).toBe(109466);
    await rejects(t.readFile(2, 0, 10), ErrorCode.NOT_FOUND, new RegExp(`^chunk blob sha256:${JPG_SHA}: not found`));
  });

  it("a truncated rootfs", async () => {
    const dir = tmp.make();
    const full = readFileSync(blobPath(fixtureDir("sekien-noop"), NOOP_ROOTFS));
    const w = await writeImage(dir, "t", full.subarray(0, 200));
    await rejects(openImage(dir, "t"), ErrorCode.FORMAT, new RegExp(`^rootfs blob sha256:${w.rootfsHex} segment 0 @0x4: truncated`));
  });

  it("a garbage rootfs", async () => {
    const dir = tmp.make();
    await writeImage(dir, "t", new TextEncoder().encode("this is not a cap'n proto message at all!"));
    await rejects(openImage(dir, "t"), ErrorCode.FORMAT, /^rootfs blob sha256:[0-9a-f]{64} (framing|segment)/);
  });

  it("a list claiming more elements than the message holds", async () => {
    const { I, rootfs } = await import("../../helpers/test-image.ts");
    const { scatterEncode } = await import("../../helpers/capnp-writer.ts");
    const bytes = scatterEncode(rootfs([[I.dir(1, [["a", 2]]), I.plain(2, "fifo")]]), { seed: 1, far: 0, segmentWords: 1 << 12 });
    // The Inode list's tag word: struct "pointer" with count 2 and size 3 data words + 2 pointers.
    const dv = new DataView(bytes.buffer);
    let at = -1;
    for (let p = 8; p < bytes.length; p += 8) if (dv.getUint32(p, true) === 2 << 2 && dv.getUint32(p + 4, true) === (3 | (2 << 16))) at = p;
    expect(at).toBeGreaterThan(0);
    dv.setUint32(at, 2000 << 2, true);
    const dir = tmp.make();
    const w = await writeImage(dir, "t", bytes);
    await rejects(
      openImage(dir, "t"),
      ErrorCode.FORMAT,
      new RegExp(`^rootfs blob sha256:${w.rootfsHex} InodeVector.inodes @0x${at.toString(16)}: list claims 2000 elements of 5 words, more than its 10 words hold`),
    );
  });

  it("a rootfs with manifestVersion other than 3", async () => {
    const dir = tmp.make();
    const { I, rootfs } = await import("../../helpers/test-image.ts");
    await writeImage(dir, "t", rootfs([[I.dir(1, [])]], { version: 2n }));
    await rejects(openImage(dir, "t"), ErrorCode.FORMAT, /invalid image version \(manifestVersion\): expected 3, got 2/);
  });

  it("a manifest without a rootfs layer", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const m = blobPath(dir, "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c");
    const body = readFileSync(m, "utf8").replace("image.rootfs.v1", "image.rootfs.v2");
    const hex = sha256hex(Buffer.from(body));
    writeFileSync(blobPath(dir, hex), body);
    writeFileSync(join(dir, "index.json"), readFileSync(join(dir, "index.json"), "utf8").replace("9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c", hex));
    await rejects(openImage(dir, "test"), ErrorCode.FORMAT, /no layer has media type application\/vnd.puzzlefs.image.rootfs.v1; not a PuzzleFS image/);
  });
});

describe("reader/image: mutated images (property)", () => {
  // A rootfs, manifest template, index template and chunk blob per input (fuzz/targets/image.ts), digests
  // re-derived after mutation so the parsers see the damage, not a digest mismatch.
  const seedsDir = join(import.meta.dirname, "../../../fuzz/seeds/image");
  const bases = ["small", "small-zstd", "two-layers"].map((n) => readFileSync(join(seedsDir, n)));
  fcTest.prop([fc.constantFrom(...bases).chain((b) => mutated(b, 3))], { numRuns: 80 })(
    "open, walk, read, plan: success or a one-line PfsError, never another exception",
    async (input) => {
      // exerciseImage rethrows anything that is not a PfsError, and a PfsError whose message spans lines.
      const r = await exerciseImage(tmp.make(), decodeImageInput(input));
      if (r.error) expect(r.error.message.length).toBeGreaterThan(0);
      else expect(r.opened && r.planned).toBe(true);
    },
  );
});
