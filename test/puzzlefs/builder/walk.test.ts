import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { encodeRootfs } from "../../../src/puzzlefs/format/encode.ts";
import type { DirEntry, Inode } from "../../../src/puzzlefs/format/types.ts";
import { ChunkMapper } from "../../../src/puzzlefs/builder/chunkmap.ts";
import { StreamCdc } from "../../../src/puzzlefs/builder/fastcdc.ts";
import { hasNativeAddon } from "../../../src/puzzlefs/native.ts";
import { readStream } from "../../../src/puzzlefs/builder/stream.ts";
import { devMajorMinor, walk, type BaseLookup, type WalkResult } from "../../../src/puzzlefs/builder/walk.ts";
import { capnpEsDecode } from "../../helpers/rootfs-oracles.ts";
import { MIXED_TREE, makeTree, removeTree, tempDir, type TreeSpec } from "../../helpers/tree.ts";
import { makeTortureTree, olderTortureSpec, tortureSpec } from "../../helpers/torture-tree.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    spawnSync("umount", ["-l", join(d, "mnt")]);
    removeTree(d);
  }
});
function tree(spec: TreeSpec, rootAttrs = {}): string {
  const d = tempDir();
  dirs.push(d);
  makeTree(d, spec, rootAttrs);
  return d;
}

const str = (b: Uint8Array) => Buffer.from(b).toString();
const byIno = (r: WalkResult) => new Map(r.inodes.map((n) => [n.ino, n]));
const entries = (n: Inode | undefined): Array<[string, number]> =>
  n?.mode.kind === "dir" ? n.mode.entries.map((e) => [str(e.name), Number(e.ino)]) : [];
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

/** Walk + read + FastCDC + chunk mapping, with Noop blobs (digest = sha256 of the chunk). */
async function chunked(root: string, base?: BaseLookup): Promise<{ r: WalkResult; chunks: Buffer[] }> {
  const r = walk(root, base);
  const cdc = new StreamCdc();
  const map = new ChunkMapper(r.stream);
  const chunks: Buffer[] = [];
  const take = (cs: ReturnType<StreamCdc["push"]>) => {
    for (const c of cs) {
      chunks.push(Buffer.from(c.data));
      map.add(c.length, new Uint8Array(sha256(c.data)), false);
    }
  };
  for await (const b of readStream(r.stream)) take(cdc.push(b));
  take(cdc.finish());
  expect(map.complete).toBe(true);
  return { r, chunks };
}

describe("walk: numbering and order (spec §3.1)", () => {
  it("is depth-first pre-order over directories, numbering each directory's entries in sorted order", () => {
    const d = tree([
      ["a", { type: "dir" }],
      ["a/x", { type: "dir" }],
      ["a/x/1", { type: "file", data: "1" }],
      ["a/y", { type: "file", data: "y" }],
      ["b", { type: "dir" }],
      ["b/z", { type: "file", data: "z" }],
    ]);
    const r = walk(d);
    const names = byIno(r);
    expect(entries(names.get(1n))).toEqual([["a", 2], ["b", 3]]);
    expect(entries(names.get(2n))).toEqual([["x", 4], ["y", 5]]);
    expect(entries(names.get(4n))).toEqual([["1", 6]]);
    expect(entries(names.get(3n))).toEqual([["z", 7]]);
    expect(r.stream.map((f) => str(f.path).slice(d.length))).toEqual(["/a/y", "/a/x/1", "/b/z"]);
    expect(r.inodes.map((n) => n.ino)).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n]);
  });

  it("sorts names bytewise, including non-UTF-8 and 255-byte names", () => {
    const long = "L".repeat(255);
    const bad = Buffer.from([0x66, 0xff, 0xfe]);
    const d = tree([
      ["b", { type: "file" }],
      [bad, { type: "file", data: "bytes" }],
      ["B", { type: "file" }],
      [long, { type: "dir" }],
      ["é", { type: "file" }],
    ]);
    const r = walk(d);
    const root = r.inodes[0]!;
    if (root.mode.kind !== "dir") throw new Error("root not a dir");
    const got = root.mode.entries.map((e) => Buffer.from(e.name));
    const want = [Buffer.from("B"), Buffer.from(long), Buffer.from("b"), bad, Buffer.from("é")];
    expect(got).toEqual(want);
    expect(r.stream.find((f) => f.size === 5)?.path.subarray(-3)).toEqual(bad);
  });

  it("gives hard links one inode and skips a number per extra name", () => {
    const r = walk(tree(MIXED_TREE));
    const m = byIno(r);
    expect(entries(m.get(1n))).toEqual([["a.txt", 2], ["b", 2], ["dir", 4], ["link", 5], ["z.txt", 6]]);
    expect(entries(m.get(4n))).toEqual([["big.bin", 7], ["empty", 8], ["fifo", 9], ["null", 10]]);
    expect(m.has(3n)).toBe(false);
    expect(r.counts).toMatchObject({ dirs: 2, files: 4, symlinks: 1, others: 2, hardlinks: 1, bytes: 300009 });
  });
});

describe("walk: inode contents (spec §3.2)", () => {
  it("records kinds, permissions incl. setuid/setgid/sticky, 32-bit ids, devices, symlinks and xattrs", () => {
    expect(hasNativeAddon()).toBe(true);
    const d = tree([
      ["blk", { type: "blk", major: 259, minor: 70000, mode: 0o640 }],
      ["chr", { type: "chr", major: 4095, minor: 255, mode: 0o620, uid: 4294967294, gid: 3000000000 }],
      ["fifo", { type: "fifo", mode: 0o1777 }],
      ["lnk", { type: "symlink", target: Buffer.from([0x2e, 0x2e, 0x2f, 0xff]), uid: 7, gid: 8, xattrs: { "trusted.t": "on-link" } }],
      ["sock", { type: "sock", mode: 0o755 }],
      ["sticky", { type: "dir", mode: 0o1777, xattrs: { "user.first": "1", "user.empty": "", "trusted.bin": Buffer.from([0, 1, 255]) } }],
    ]);
    const m = byIno(walk(d));
    const get = (name: string) => {
      const e = m.get(1n)!.mode;
      if (e.kind !== "dir") throw new Error("not a dir");
      return m.get(e.entries.find((x) => str(x.name) === name)!.ino)!;
    };
    expect(get("blk")).toMatchObject({ mode: { kind: "blk", major: 259n, minor: 70000n }, permissions: 0o640 });
    expect(get("chr")).toMatchObject({ mode: { kind: "chr", major: 4095n, minor: 255n }, permissions: 0o620, uid: 4294967294, gid: 3000000000 });
    expect(get("fifo")).toMatchObject({ mode: { kind: "fifo" }, permissions: 0o1777, additional: null });
    expect(get("sock")).toMatchObject({ mode: { kind: "sock" }, permissions: 0o755 });
    const lnk = get("lnk");
    expect(lnk).toMatchObject({ mode: { kind: "lnk" }, permissions: 0o777, uid: 7, gid: 8 });
    expect(Buffer.from(lnk.additional!.symlinkTarget!)).toEqual(Buffer.from([0x2e, 0x2e, 0x2f, 0xff]));
    expect(lnk.additional!.xattrs.map((x) => [str(x.key), str(x.val)])).toEqual([["trusted.t", "on-link"]]);
    // xattr order is llistxattr's: compare with Python's os.listxattr (the same syscall).
    const listed = JSON.parse(
      execFileSync("python3", ["-c", "import os,sys,json; print(json.dumps(os.listxattr(sys.argv[1], follow_symlinks=False)))", join(d, "sticky")], { encoding: "utf8" }),
    );
    const sticky = get("sticky");
    expect(sticky.permissions).toBe(0o1777);
    expect(sticky.additional!.xattrs.map((x) => str(x.key))).toEqual(listed);
    expect(sticky.additional!.xattrs.find((x) => str(x.key) === "trusted.bin")!.val).toEqual(new Uint8Array([0, 1, 255]));
    expect(sticky.additional!.xattrs.find((x) => str(x.key) === "user.empty")!.val).toEqual(new Uint8Array());
    expect(sticky.additional!.symlinkTarget).toBeNull();
  });

  it("decodes st_rdev like glibc major()/minor()", () => {
    // stat(1) prints the kernel's major/minor in hex; compare with ours for a large pair.
    const d = tree([["dev", { type: "chr", major: 4000, minor: 1048575 }]]);
    const [maj, min] = execFileSync("stat", ["-c", "%t %T", join(d, "dev")], { encoding: "utf8" }).trim().split(" ");
    const rdev = lstatSync(join(d, "dev"), { bigint: true }).rdev;
    expect(devMajorMinor(rdev)).toEqual({ major: BigInt(`0x${maj}`), minor: BigInt(`0x${min}`) });
    // major = bits 8–19 and 44–63, minor = bits 0–7 and 20–43, truncated to 32 bits
    expect(devMajorMinor(0x0000_1234_5678_9abcn)).toEqual({ major: 0x189an, minor: 0x234567bcn });
  });

  it("lists a mount point's entries but does not descend into directories on the other filesystem", () => {
    const d = tree([["mnt", { type: "dir" }], ["z", { type: "file", data: "z" }]]);
    execFileSync("mount", ["-t", "tmpfs", "tmpfs", join(d, "mnt")]);
    mkdirSync(join(d, "mnt/sub"));
    writeFileSync(join(d, "mnt/sub/deep"), "deep");
    writeFileSync(join(d, "mnt/top"), "top");
    const r = walk(d);
    const m = byIno(r);
    expect(entries(m.get(2n))).toEqual([["sub", 4], ["top", 5]]);
    expect(entries(m.get(4n))).toEqual([]);
    expect(r.stream.map((f) => str(f.path).slice(d.length))).toEqual(["/z", "/mnt/top"]);
  });
});

describe("walk + chunks: reproduces the mixed-noop fixture's rootfs (spec §6)", () => {
  it("gives the inodes, chunk slices and rootfs digest of fixtures/oci/mixed-noop", async () => {
    const { r, chunks } = await chunked(tree(MIXED_TREE));
    expect(chunks.map((c) => c.length)).toEqual([152560, 72716, 58762, 15971]);
    const fixture = "test/fixtures/oci/mixed-noop/blobs/sha256/";
    const want = capnpEsDecode(readFileSync(fixture + "50eec5b51267163909d423ca15f0b912a09574901856a286663a6fb5c1a01d35"));
    expect(r.inodes).toEqual(want.metadatas[0]!.inodes);
    const bytes = encodeRootfs({ metadatas: [{ inodes: r.inodes }], fsVerityData: want.fsVerityData, manifestVersion: 3n });
    expect(sha256(bytes).toString("hex")).toBe("50eec5b51267163909d423ca15f0b912a09574901856a286663a6fb5c1a01d35");
    // and every chunk we cut is a blob of the fixture
    for (const c of chunks) expect(readdirSync(fixture)).toContain(sha256(c).toString("hex"));
  });
});

/** A base image held in memory: layers of inodes, upstream lookup semantics (spec §2.4). */
function memoryBase(layers: Inode[][]): BaseLookup {
  const find = (ino: bigint) => {
    for (const l of layers) {
      const n = l.find((x) => x.ino === ino);
      if (n) return n.mode.kind === "wht" ? null : n;
    }
    return null;
  };
  return {
    maxInode: layers.reduce((m, l) => (l.length && l[l.length - 1]!.ino > m ? l[l.length - 1]!.ino : m), 1n),
    lookup(components) {
      let n = find(1n);
      for (const c of components) {
        if (!n || n.mode.kind !== "dir") return null;
        const e: DirEntry | undefined = n.mode.entries.find((x) => Buffer.from(x.name).equals(Buffer.from(c)));
        n = e ? find(e.ino) : null;
      }
      return n ? { ino: n.ino, entries: n.mode.kind === "dir" ? n.mode.entries : null } : null;
    },
  };
}

describe("walk: delta builds (spec §3.9)", () => {
  it("reproduces the sekien-delta-noop top layer", async () => {
    const jpg = readFileSync("test/fixtures/SekienAkashita.jpg");
    const baseDir = tree([["SekienAkashita.jpg", { type: "file", data: jpg }]]);
    const base = walk(baseDir);
    const d = tree([["SekienAkashita.jpg", { type: "file", data: jpg }], ["foo", { type: "dir" }]]);
    const { r } = await chunked(d, memoryBase([base.inodes]));
    const fixture = capnpEsDecode(readFileSync("test/fixtures/oci/sekien-delta-noop/blobs/sha256/7c331469cc429b0aaccfe63d6a5836c32df8df32f97523975fcc78c1af72af18"));
    expect(r.inodes).toEqual(fixture.metadatas[0]!.inodes);
  });

  it("reuses base inos by path, numbers new paths from max_inode+1, and whites out deleted names first", () => {
    const v1 = walk(tree([
      ["keep", { type: "file", data: "k" }],
      ["gone", { type: "file", data: "g" }],
      ["sub", { type: "dir" }],
      ["sub/old", { type: "file" }],
    ]));
    // v1: keep=4? names sorted: gone=2, keep=3, sub=4, old=5
    expect(entries(v1.inodes[0])).toEqual([["gone", 2], ["keep", 3], ["sub", 4]]);
    const r = walk(tree([["keep", { type: "file", data: "k2" }], ["new", { type: "file" }], ["sub", { type: "dir" }], ["sub/n2", { type: "file" }]]), memoryBase([v1.inodes]));
    const m = byIno(r);
    expect(entries(m.get(1n))).toEqual([["gone", 2], ["keep", 3], ["new", 6], ["sub", 4]]);
    expect(entries(m.get(4n))).toEqual([["old", 5], ["n2", 7]]);
    expect(m.get(2n)).toEqual({ ino: 2n, mode: { kind: "wht" }, uid: 0, gid: 0, permissions: 0o644, additional: null });
    expect(m.get(5n)!.mode.kind).toBe("wht");
    expect(r.counts.whiteouts).toBe(2);
  });

  it("does not write two inodes with one ino when a base hard-link pair is split or half deleted", () => {
    const v1 = walk(tree([["a", { type: "file", data: "x" }], ["b", { type: "hardlink", to: "a" }], ["c", { type: "file", data: "c" }], ["d", { type: "hardlink", to: "c" }]]));
    expect(entries(v1.inodes[0])).toEqual([["a", 2], ["b", 2], ["c", 4], ["d", 4]]);
    // now: a and b are different files; c kept, d deleted
    const r = walk(tree([["a", { type: "file", data: "x" }], ["b", { type: "file", data: "y" }], ["c", { type: "file", data: "c" }]]), memoryBase([v1.inodes]));
    const inos = r.inodes.map((n) => n.ino);
    expect(new Set(inos).size).toBe(inos.length);
    // b cannot keep base ino 2 (now a's) and gets max_inode(base)+1 = 5; d's whiteout (ino 4) is dropped: c still uses 4.
    expect(entries(r.inodes[0])).toEqual([["a", 2], ["b", 5], ["c", 4]]);
  });
});

describe("walk: the C directory scan (native/pfs_native.c scandir) against Node's fs", () => {
  it("gives the same walk, with and without a base, over every kind of object", () => {
    expect(hasNativeAddon()).toBe(true);
    const d = tempDir();
    dirs.push(d);
    makeTortureTree(d, tortureSpec());
    const old = tempDir();
    dirs.push(old);
    makeTortureTree(old, olderTortureSpec());
    // A base lookup over the older tree's walk (paths → inos), as a delta build has.
    const prev = walk(old, undefined, { native: false });
    const byIno = new Map(prev.inodes.map((n) => [n.ino, n]));
    const base: BaseLookup = {
      maxInode: prev.inodes.at(-1)!.ino,
      lookup(components) {
        let n = byIno.get(1n)!;
        for (const c of components) {
          if (n.mode.kind !== "dir") return null;
          const e = n.mode.entries.find((x) => Buffer.from(x.name).equals(Buffer.from(c)));
          if (!e) return null;
          n = byIno.get(e.ino)!;
        }
        return { ino: n.ino, entries: n.mode.kind === "dir" ? n.mode.entries : null };
      },
    };
    for (const b of [undefined, base]) {
      const js = walk(d, b, { native: false });
      const c = walk(d, b);
      expect(c.inodes.length).toBeGreaterThan(30);
      expect(c.inodes).toEqual(js.inodes);
      expect(c.stream.map((f) => [f.path, f.size, f.ino])).toEqual(js.stream.map((f) => [f.path, f.size, f.ino]));
      expect(c.counts).toEqual(js.counts);
    }
    // Both rootfs encodings are the same bytes.
    expect(Buffer.from(encodeRootfs({ metadatas: [{ inodes: walk(d).inodes }], fsVerityData: [], manifestVersion: 3n }))).toEqual(
      Buffer.from(encodeRootfs({ metadatas: [{ inodes: walk(d, undefined, { native: false }).inodes }], fsVerityData: [], manifestVersion: 3n })),
    );
  });

  it("reads every file like Node's fs: same bytes, same errors", async () => {
    const d = tree([["a", { type: "file", data: "aaaa" }], ["b", { type: "file", data: Buffer.alloc(2 << 20, 3) }], ["c", { type: "file", data: "cc" }]]);
    const all = async (r: WalkResult, native: boolean) => {
      const parts: Buffer[] = [];
      for await (const x of readStream(r.stream, { native })) parts.push(Buffer.from(x));
      return Buffer.concat(parts);
    };
    const r = walk(d);
    const [c, js] = [await all(r, true), await all(r, false)];
    expect(c.length).toBe((2 << 20) + 6);
    expect(c.equals(js)).toBe(true);
    const failure = async (native: boolean) => all(walk(d), native).then(() => "no error", (e: Error) => e.message);
    const cases: Array<[() => void, RegExp]> = [
      [() => appendFileSync(join(d, "a"), "more"), /\/a: grew beyond its 4 bytes while the image was being built/],
      [() => writeFileSync(join(d, "c"), "c"), /\/c: shrank from 2 to 1 bytes/],
      [() => execFileSync("ln", ["-sf", "b", join(d, "c")]), /opening .*\/c: ELOOP/],
      [() => (rmSync(join(d, "c")), execFileSync("mkfifo", [join(d, "c")])), /\/c: stopped being a regular file/],
    ];
    for (const [change, expected] of cases) {
      const r2 = walk(d);
      change();
      const seen = [await all(r2, true).then(() => "no error", (e: Error) => e.message), await all(r2, false).then(() => "no error", (e: Error) => e.message)];
      expect(seen[0]).toMatch(expected);
      // The same message, up to the system's wording of the errno (strerror vs libuv's).
      expect(seen[0]!.replace(/ \(.*$/s, "")).toBe(seen[1]!.replace(/ \(.*$/s, ""));
      rmSync(join(d, "a"));
      rmSync(join(d, "c"));
      writeFileSync(join(d, "a"), "aaaa");
      writeFileSync(join(d, "c"), "cc");
    }
    expect(await failure(true)).toBe("no error");
  });
});

describe("walk: bad input", () => {
  it("names a missing rootfs and refuses a rootfs that is not a directory", () => {
    expect(() => walk("/nonexistent/rootfs")).toThrow(/\/nonexistent\/rootfs: not found/);
    const d = tree([["f", { type: "file" }]]);
    expect(() => walk(join(d, "f"))).toThrow(/is not a directory/);
  });

  it("reports an unreadable directory with its path (as an unprivileged user)", () => {
    const d = tree([["locked", { type: "dir", mode: 0o000 }], ["ok", { type: "file" }]]);
    execFileSync("chmod", ["755", d]);
    const script = `import { walk } from ${JSON.stringify(join(process.cwd(), "src/puzzlefs/builder/walk.ts"))};
      for (const native of [true, false]) {
        try { walk(${JSON.stringify(d)}, undefined, { native }); console.log("no error"); } catch (e) { console.log(e.code + " " + e.message); }
      }`;
    const out = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { uid: 65534, gid: 65534, encoding: "utf8" });
    const [c, js] = out.stdout.trim().split("\n");
    expect(c).toMatch(/^IO reading directory .*\/locked: EACCES/);
    expect(c!.replace(/ \(.*$/s, "")).toBe(js!.replace(/ \(.*$/s, ""));
  });

});
