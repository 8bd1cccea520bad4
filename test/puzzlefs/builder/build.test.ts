import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { build, type BuildOptions, type BuildResult } from "../../../src/puzzlefs/builder/build.ts";
import { ChunkMapper } from "../../../src/puzzlefs/builder/chunkmap.ts";
import { chunkAll } from "../../../src/puzzlefs/builder/fastcdc.ts";
import { readStream } from "../../../src/puzzlefs/builder/stream.ts";
import { walk } from "../../../src/puzzlefs/builder/walk.ts";
import { decodeRootfs } from "../../../src/puzzlefs/format/decode.ts";
import { encodeRootfs } from "../../../src/puzzlefs/format/encode.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { fsVerityHex } from "../../../src/puzzlefs/verity.ts";
import { blobBytesTotal, blobNames, layoutListing, manifestOf, readIndexJson, rootfsViaCapnp } from "../../helpers/layout-check.ts";
import { FIXTURES, fixtureDir, sha256hex } from "../../helpers/oci-fixtures.ts";
import { makeTortureTree, olderTortureSpec, randomBytes, textBytes, tortureSpec } from "../../helpers/torture-tree.ts";
import { MIXED_TREE, makeTree, removeTree, tempDir, type TreeSpec } from "../../helpers/tree.ts";

const dirs: string[] = [];
const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) spawnSync("umount", [m]);
  for (const d of dirs.splice(0)) removeTree(d);
});
const scratch = (): string => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
function tree(spec: TreeSpec, rootAttrs = {}): string {
  const d = scratch();
  makeTree(d, spec, rootAttrs);
  return d;
}
function tmpfs(size: string): string {
  const d = join(scratch(), "mnt");
  mkdirSync(d);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", d]);
  mounts.push(d);
  return d;
}

async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<PfsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect({ code: (e as PfsError).code, message: (e as PfsError).message }).toMatchObject({ code, message: expect.stringMatching(re) });
    return e as PfsError;
  }
  throw new Error("expected a rejection");
}

const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));
const SEKIEN: TreeSpec = [["SekienAkashita.jpg", { type: "file", data: JPG }]];
const SEKIEN_FOO: TreeSpec = [...SEKIEN, ["foo", { type: "dir" }]];
const own = { uid: 1000, gid: 1000 };
/** The README example tree (spec §6): its rootfs digest is upstream's. */
const README_TREE: TreeSpec = [
  ["algorithms", { type: "dir", mode: 0o775, ...own }],
  ["algorithms/binary-search.txt", { type: "file", mode: 0o664, ...own }],
  ["lorem_ipsum.txt", { type: "file", data: "Lorem ipsum dolor sit amet\n", mode: 0o664, ...own }],
];

describe("build: spec §6 vectors, byte for byte", () => {
  it("the README rootfs: 552 bytes, sha256 9e2edc69…, fs-verity annotation 7b22d021…", async () => {
    const out = join(scratch(), "oci");
    const r = await build(tree(README_TREE, { ...own, mode: 0o755 }), out, "puzzlefs_example");
    expect(r.rootfsHex).toBe("9e2edc6917b65606b1112ac8663665dfd2d945cfea960ca595accf790922b910");
    const m = manifestOf(out, "puzzlefs_example").json;
    expect(m.layers[0]).toEqual({
      annotations: { "io.puzzlefsoci.puzzlefs.puzzlefs_verity_root_hash": "7b22d0210c16134159be75d8239d100817b451591d39af2031d94ae84ac4f8c7" },
      digest: "sha256:9e2edc6917b65606b1112ac8663665dfd2d945cfea960ca595accf790922b910",
      mediaType: "application/vnd.puzzlefs.image.rootfs.v1",
      size: 552,
    });
    expect(m.layers.slice(1)).toEqual([
      { digest: "sha256:b7f1ee9373416a49835747455ec4d287bcccc5a4bf8c38156483d46b35ce4dbd", mediaType: "application/vnd.puzzlefs.image.filedata.v1", size: 27 },
    ]);
    expect(readFileSync(join(FIXTURES, "readme-example-rootfs.capnp")).equals(rootfsViaCapnp(out, "puzzlefs_example").bytes)).toBe(true);
  });

  it("sekien-noop: the whole layout equals the fixture; the chunk is the jpg itself; prints fs-verity 551f8d48…", async () => {
    const out = join(scratch(), "oci");
    const r = await build(tree(SEKIEN), out, "test");
    expect(layoutListing(out)).toEqual(layoutListing(fixtureDir("sekien-noop")));
    expect(r.manifestHex).toBe("9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c");
    expect(r.manifestVerity).toBe("551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d");
    // fsverity-utils is the oracle for the printed digest.
    const printed = execFileSync("fsverity", ["digest", "--hash-alg=sha256", "--block-size=4096", join(out, "blobs/sha256", r.manifestHex)], { encoding: "utf8" });
    expect(printed.split(" ")[0]).toBe(`sha256:${r.manifestVerity}`);
    expect(blobNames(out)).toContain(sha256hex(JPG));
    rootfsViaCapnp(out, "test");
  });

  it("sekien-zstd (-c): chunk d568d150… (= the zeekstd fixture; zstd -d gives the jpg back), layout equals the fixture", async () => {
    const out = join(scratch(), "oci");
    const r = await build(tree(SEKIEN), out, "test", { compression: true });
    expect(layoutListing(out)).toEqual(layoutListing(fixtureDir("sekien-zstd")));
    expect(r.manifestHex).toBe("ef745b9730dbfbc9fb506069e98fcbf2e874ff9f05f343a941d43e9d352b3dff");
    const blob = readFileSync(join(out, "blobs/sha256/d568d1505905ee36e66ef6f94f544a50f52c6a63574048da0cf351b8235ff42b"));
    expect(blob.equals(readFileSync(join(FIXTURES, "SekienAkashita.zeekstd.zst")))).toBe(true);
    expect(execFileSync("zstd", ["-dc"], { input: blob }).equals(JPG)).toBe(true);
    const { rootfs } = rootfsViaCapnp(out, "test");
    const file = rootfs.metadatas[0]!.inodes[1]!;
    expect(file.mode).toMatchObject({ kind: "file", chunks: [{ len: 109466n, blob: { offset: 0n, compressed: true } }] });
    expect(manifestOf(out, "test").json.layers[1]!.mediaType).toBe("application/vnd.puzzlefs.image.filedata.v1+zstd");
  });

  it("sekien-delta-noop: a delta adding foo/ over tag test gives the fixture's tags, rootfs 7c331469… and blobs", async () => {
    const out = join(scratch(), "oci");
    await build(tree(SEKIEN), out, "test");
    const r = await build(tree(SEKIEN_FOO), out, "test2", { baseTag: "test" });
    expect(r.rootfsHex).toBe("7c331469cc429b0aaccfe63d6a5836c32df8df32f97523975fcc78c1af72af18");
    expect(layoutListing(out)).toEqual(layoutListing(fixtureDir("sekien-delta-noop")));
    const { rootfs } = rootfsViaCapnp(out, "test2");
    expect(rootfs.metadatas).toHaveLength(2);
    const img = await openImage(out, "test2");
    expect(img.tree.node(1).entries!.map((e) => [Buffer.from(e.name).toString(), e.ino])).toEqual([["SekienAkashita.jpg", 2], ["foo", 3]]);
  });

  it("mixed-noop: modes, owners, hard link, symlink, fifo, chr 1:3, xattr and the 300000-byte counter stream give manifest e5811d7b…", async () => {
    const out = join(scratch(), "oci");
    const r = await build(tree(MIXED_TREE), out, "mixed");
    expect(r.manifestHex).toBe("e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052");
    expect(layoutListing(out)).toEqual(layoutListing(fixtureDir("mixed-noop")));
    expect(r.stats).toMatchObject({ files: 4, hardlinks: 1, symlinks: 1, others: 2, chunks: 4, uniqueChunks: 4, bytes: 300009, newBlobs: 4 });
    rootfsViaCapnp(out, "mixed");
  });
});

describe("build: reproducible", () => {
  it("walks while it streams: later directories of many small and empty files get the inodes of a walk done first", async () => {
    // Walk order: "a" (9 MiB: the builder walks on only after that much data), then 60
    // directories of empty and small files, a hard link back to the first, an empty last file.
    const spec: TreeSpec = [["a", { type: "file", data: randomBytes(9 << 20, 5) }]];
    for (let i = 0; i < 60; i++) {
      const d = `d${String(i).padStart(2, "0")}`;
      spec.push([d, { type: "dir" }], [`${d}/e`, { type: "file" }], [`${d}/f`, { type: "file", data: textBytes(3000 + 97 * i, i) }], [`${d}/g`, { type: "file" }]);
    }
    spec.push(["d59/link", { type: "hardlink", to: "d00/f" }], ["z", { type: "file" }]);
    const src = scratch();
    makeTree(src, spec);
    const out = join(scratch(), "oci");
    const r = await build(src, out, "t", { workers: 2 });
    expect(r.stats).toMatchObject({ files: 182, dirs: 61, hardlinks: 1, workers: 2 });
    // The reference: the whole walk first, then the stream, chunked at once (noop blob name = sha256 of the chunk).
    const ref = walk(src);
    const parts: Buffer[] = [];
    for (const b of readStream(ref.stream)) parts.push(Buffer.from(b));
    const mapper = new ChunkMapper(ref.stream);
    for (const c of chunkAll(Buffer.concat(parts))) mapper.add(c.length, new Uint8Array(Buffer.from(sha256hex(c.data), "hex")), false);
    expect(mapper.complete).toBe(true);
    // Byte for byte: the built rootfs is that walk's inodes (with the build's fsVerityData).
    const bytes = readFileSync(join(out, "blobs/sha256", r.rootfsHex));
    const { fsVerityData } = decodeRootfs(bytes);
    expect(Buffer.from(encodeRootfs({ metadatas: [{ inodes: ref.inodes }], fsVerityData, manifestVersion: 3n })).equals(bytes)).toBe(true);
  });

  it("the same tree from two source directories, built twice, inline and with 2 worker threads, gives one layout", async () => {
    const spec = tortureSpec({ bigFileBytes: 2 << 20 });
    const a = scratch();
    const b = scratch();
    makeTortureTree(a, spec);
    makeTortureTree(b, spec);
    const outs: string[] = [];
    const results: BuildResult[] = [];
    for (const [src, opts] of [[a, { workers: 0 }], [b, { workers: 2 }], [a, { workers: 2 }]] as Array<[string, BuildOptions]>) {
      const out = join(scratch(), "oci");
      results.push(await build(src, out, "t", { ...opts, compression: true }));
      outs.push(out);
    }
    expect(results.map((r) => r.stats.workers)).toEqual([0, 2, 2]);
    expect(new Set(results.map((r) => r.manifestVerity)).size).toBe(1);
    expect(layoutListing(outs[1]!)).toEqual(layoutListing(outs[0]!));
    expect(layoutListing(outs[2]!)).toEqual(layoutListing(outs[0]!));
    // Rebuilding into the same layout changes nothing and writes no new blob.
    const again = await build(a, outs[0]!, "t", { compression: true });
    expect(again.manifestVerity).toBe(results[0]!.manifestVerity);
    expect(again.stats.newBlobs).toBe(0);
    expect(layoutListing(outs[0]!)).toEqual(layoutListing(outs[1]!));
  });
});

describe("build: deltas (spec §3.9)", () => {
  it("metadatas = [new] + base, fsVerityData = base ∪ new (sorted, unique), only this build's chunks listed, base tag untouched", async () => {
    const out = join(scratch(), "oci");
    const v1src = scratch();
    makeTortureTree(v1src, olderTortureSpec());
    const v2src = scratch();
    makeTortureTree(v2src, tortureSpec());
    const v1 = await build(v1src, out, "v1", { compression: true });
    const before = rootfsViaCapnp(out, "v1").rootfs;
    const v2 = await build(v2src, out, "v2", { compression: true, baseTag: "v1" });
    const after = rootfsViaCapnp(out, "v2").rootfs;
    expect(after.metadatas).toHaveLength(2);
    expect(after.metadatas[1]).toEqual(before.metadatas[0]);
    const hexes = after.fsVerityData.map((v) => Buffer.from(v.digest).toString("hex"));
    expect(hexes).toEqual([...new Set(hexes)].sort());
    const chunkHexes = manifestOf(out, "v2").json.layers.slice(1).map((l) => l.digest.slice(7));
    expect(new Set(hexes)).toEqual(new Set([...before.fsVerityData.map((v) => Buffer.from(v.digest).toString("hex")), ...chunkHexes]));
    expect(chunkHexes).toHaveLength(v2.stats.chunks);
    // Whiteouts for the names v2 dropped: gone.txt and dir/old-sub, listed first in their directories.
    // hard-gone shared its ino with hard1, which lives on: that name is dropped without a whiteout.
    const top = new Map(after.metadatas[0]!.inodes.map((n) => [n.ino, n]));
    const names = (ino: bigint) => {
      const m = top.get(ino)!.mode;
      return m.kind === "dir" ? m.entries.map((e) => [Buffer.from(e.name).toString(), top.get(e.ino)?.mode.kind]) : [];
    };
    expect(names(1n).slice(0, 2)).toEqual([["gone.txt", "wht"], ["big.bin", "file"]]);
    expect(names(1n).map((e) => e[0])).not.toContain("hard-gone");
    const dirIno = (top.get(1n)!.mode as { entries: Array<{ name: Uint8Array; ino: bigint }> }).entries.find((e) => Buffer.from(e.name).toString() === "dir")!.ino;
    expect(names(dirIno)[0]).toEqual(["old-sub", "wht"]);
    expect([...top.values()].filter((n) => n.mode.kind === "wht")).toHaveLength(2);
    expect(v2.stats.whiteouts).toBe(2);
    expect(manifestOf(out, "v1").hex).toBe(v1.manifestHex);
    // The same tree again over v2: its layer is already there, so it is not inserted twice.
    const v3 = await build(v2src, out, "v3", { compression: true, baseTag: "v2" });
    expect(rootfsViaCapnp(out, "v3").rootfs.metadatas).toHaveLength(2);
    expect(v3.stats.metadataLayers).toBe(2);
    expect(v3.rootfsHex).toBe(v2.rootfsHex);
  });
});

describe("build: dedup", () => {
  it("a second version with 5% of the files changed stores < 15% new bytes; repeated chunks are listed again", async () => {
    const spec: TreeSpec = [];
    for (let i = 0; i < 60; i++) {
      const n = 64 * 1024 + ((i * 7919) % 9) * 96 * 1024;
      spec.push([`f${String(i).padStart(2, "0")}`, { type: "file", data: i % 2 ? textBytes(n, i) : randomBytes(n, i) }]);
    }
    // A 2 MiB file and its copy: after one chunk the cuts resync, so most chunks repeat.
    const twice = randomBytes(2 << 20, 1234);
    spec.push(["big-a", { type: "file", data: twice }], ["big-b", { type: "file", data: twice }]);
    const v1 = tree(spec);
    const out = join(scratch(), "oci");
    const r1 = await build(v1, out, "v1");
    expect(r1.stats.uniqueChunks).toBeLessThan(r1.stats.chunks);
    const listed = manifestOf(out, "v1").json.layers.slice(1).map((l) => l.digest);
    expect(listed).toHaveLength(r1.stats.chunks);
    expect(new Set(listed).size).toBe(r1.stats.uniqueChunks);
    const stored1 = blobBytesTotal(out);

    const v2 = scratch();
    cpSync(v1, v2, { recursive: true });
    // 3 of 62 files: one rewritten, one edited in the middle, one appended to.
    writeFileSync(join(v2, "f10"), randomBytes(500 * 1024, 99));
    const f20 = readFileSync(join(v2, "f20"));
    f20.write("EDITED", f20.length >> 1);
    writeFileSync(join(v2, "f20"), f20);
    appendFileSync(join(v2, "f30"), textBytes(10000, 7));
    const r2 = await build(v2, out, "v2");
    const added = blobBytesTotal(out) - stored1;
    expect(added).toBe(r2.stats.newBytes + r2.stats.rootfsBytes + manifestOf(out, "v2").bytes.length);
    expect(added / r2.stats.bytes).toBeLessThan(0.15);
    expect(added).toBeGreaterThan(500 * 1024); // the rewritten file at least
  });
});

describe("build: bad input", () => {
  it("a missing rootfs is a usage error and creates nothing; so are a file and a symlink instead of a directory", async () => {
    const out = join(scratch(), "oci");
    await rejects(build("/nonexistent/rootfs", out, "t"), ErrorCode.USAGE, /rootfs directory \/nonexistent\/rootfs does not exist/);
    const f = join(scratch(), "file");
    writeFileSync(f, "x");
    await rejects(build(f, out, "t"), ErrorCode.USAGE, /is not a directory/);
    const link = join(scratch(), "link");
    symlinkSync(tree(SEKIEN), link);
    const e = await rejects(build(link, out, "t"), ErrorCode.USAGE, /rootfs .*link is a symbolic link/);
    expect(e.hint).toMatch(/realpath/);
    expect(existsSync(out)).toBe(false);
  });

  it("a -b tag that does not exist is NOT_FOUND, names the tags there are, and writes nothing", async () => {
    const out = join(scratch(), "oci");
    const src = tree(SEKIEN);
    await build(src, out, "test");
    const before = layoutListing(out);
    const e = await rejects(build(src, out, "t2", { baseTag: "nope" }), ErrorCode.NOT_FOUND, /base layer: tag "nope" .*not found/);
    expect(e.hint).toMatch(/available tags: test/);
    expect(layoutListing(out)).toEqual(before);
    await rejects(build(src, join(scratch(), "missing"), "t2", { baseTag: "test" }), ErrorCode.NOT_FOUND, /OCI directory .*missing: not found/);
  });

  it("an existing tag is replaced by the tag write rule: removed, appended at the end, old manifest reported", async () => {
    const out = join(scratch(), "oci");
    const a = await build(tree(SEKIEN), out, "t");
    await build(tree(MIXED_TREE), out, "other");
    const b = await build(tree(SEKIEN_FOO), out, "t");
    expect(a.replaced).toBeNull();
    expect(b.replaced).toBe(`sha256:${a.manifestHex}`);
    const tags = readIndexJson(out).manifests.map((m) => [m.annotations!["org.opencontainers.image.ref.name"], m.digest]);
    expect(tags).toEqual([["other", expect.any(String)], ["t", `sha256:${b.manifestHex}`]]);
    // the old manifest blob stays (no GC)
    expect(blobNames(out)).toContain(a.manifestHex);
  });

  it("a file that changes size during the build is an IO error naming it; index.json is untouched", async () => {
    const src = tree([["a.bin", { type: "file", data: randomBytes(3 << 20, 5) }], ["b.txt", { type: "file", data: "small" }]]);
    const out = join(scratch(), "oci");
    await build(tree(SEKIEN), out, "keep");
    const index = readFileSync(join(out, "index.json"));
    let grown = false;
    const e = await rejects(
      build(src, out, "t", {
        onProgress: (p) => {
          if (!grown && p.bytesRead > 0) {
            appendFileSync(join(src, "b.txt"), "more");
            grown = true;
          }
        },
      }),
      ErrorCode.IO,
      /b\.txt: grew beyond its 5 bytes while the image was being built/,
    );
    expect(e.hint).toMatch(/snapshot/);
    expect(readFileSync(join(out, "index.json")).equals(index)).toBe(true);
  });

  it("a full disk (tmpfs) while storing chunks is IO ENOSPC, from the inline path and from worker threads; the old tag still reads", async () => {
    const mnt = tmpfs("1m");
    const out = join(mnt, "oci");
    await build(tree(SEKIEN), out, "keep");
    const index = readFileSync(join(out, "index.json"));
    const big = tree([["big.bin", { type: "file", data: randomBytes(3 << 20, 9) }]]);
    for (const workers of [0, 2]) {
      await rejects(build(big, out, "t", { workers }), ErrorCode.IO, /ENOSPC/);
      expect(readFileSync(join(out, "index.json")).equals(index)).toBe(true);
      // no temp files left behind
      expect(readdirSync(join(out, "blobs/sha256")).filter((n) => n.startsWith("."))).toEqual([]);
    }
    const img = await openImage(out, "keep");
    expect(sha256hex(await img.tree.readFile(2, 0, JPG.length))).toBe(sha256hex(JPG));
  });

  it("a full disk when index.json is rewritten leaves the old index.json whole", async () => {
    const mnt = tmpfs("1m");
    const out = join(mnt, "oci");
    const src = tree(SEKIEN);
    await build(src, out, "keep");
    const index = readFileSync(join(out, "index.json"));
    // Fill the disk: every blob of the next build already exists, only index.json needs space.
    spawnSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=64k"]);
    await rejects(build(src, out, "again"), ErrorCode.IO, /index\.json.*ENOSPC/);
    expect(readFileSync(join(out, "index.json")).equals(index)).toBe(true);
    expect(readdirSync(out).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("reports progress up to the stream length, then the metadata phase", async () => {
    const seen: Array<[string, number, number]> = [];
    const r = await build(tree(MIXED_TREE), join(scratch(), "oci"), "m", { onProgress: (p) => seen.push([p.phase, p.bytesDone, p.bytesTotal]) });
    expect(seen[0]).toEqual(["data", 0, 300009]);
    expect(seen.at(-1)).toEqual(["metadata", 300009, 300009]);
    const done = seen.map((s) => s[1]);
    expect(done).toEqual([...done].sort((x, y) => x - y));
    expect(r.stats.chunks).toBe(4);
    expect(fsVerityHex(manifestOf(r.dir, "m").bytes)).toBe(r.manifestVerity);
  });

  it("while the walk still runs the total may grow and says so; it is final long before the data is", async () => {
    // 9 MiB first (the walk stops there to start the workers), then 80 directories of small files.
    const spec: TreeSpec = [["a", { type: "file", data: randomBytes(9 << 20, 9) }]];
    for (let i = 0; i < 80; i++) {
      const d = `d${String(i).padStart(2, "0")}`;
      spec.push([d, { type: "dir" }], ...Array.from({ length: 5 }, (_, k): TreeSpec[number] => [`${d}/f${k}`, { type: "file", data: textBytes(20_000, i * 5 + k) }]));
    }
    const seen: Array<{ read: number; total: number; walking: boolean }> = [];
    const r = await build(tree(spec), join(scratch(), "oci"), "w", { workers: 2, onProgress: (p) => seen.push({ read: p.bytesRead, total: p.bytesTotal, walking: p.walking }) });
    const total = r.stats.bytes;
    expect(total).toBe((9 << 20) + 400 * 20_000);
    expect(seen[0]).toMatchObject({ walking: true });
    expect(seen[0]!.total).toBeLessThan(total);
    // Once the walk has ended the total is the stream length, and stays so.
    const ended = seen.findIndex((p) => !p.walking);
    expect(seen.slice(ended).every((p) => !p.walking && p.total === total)).toBe(true);
    expect(seen.slice(0, ended).every((p) => p.walking && p.total <= total)).toBe(true);
    // 80 directories, one per read at least: the walk ends within the first reads of small files.
    expect(seen[ended]!.read).toBeLessThan((9 << 20) + 100 * 20_000);
  });
});
