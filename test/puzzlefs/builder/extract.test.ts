import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, isPfsError } from "../../../src/common/errors.ts";
import { extract } from "../../../src/puzzlefs/builder/extract.ts";
import { MemoryTree, type MemoryNodeInit } from "../../../src/puzzlefs/tree.ts";
import { removeTree, tempDir } from "../../helpers/tree.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeTree));

/** A workspace with DEST inside it and bait next to it. */
function workspace(): { ws: string; dest: string; outside: string } {
  const ws = tempDir("pfs-extract-");
  dirs.push(ws);
  const outside = join(ws, "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "passwd"), "original\n");
  return { ws, dest: join(ws, "dest"), outside };
}

/** Everything under `dir` except `skip`, with lstat data and content hashes; never follows symlinks. */
function snapshot(dir: string, skip?: string): string[] {
  const out: string[] = [];
  const visit = (p: Buffer) => {
    for (const n of readdirSync(p, { encoding: "buffer" }).sort(Buffer.compare)) {
      const c = Buffer.concat([p, Buffer.from("/"), n]);
      if (skip && c.toString() === skip) continue;
      const st = lstatSync(c);
      const extra = st.isSymbolicLink() ? readlinkSync(c, "buffer").toString("hex") : st.isFile() ? createHash("sha256").update(readFileSync(c)).digest("hex") : "";
      out.push(`${c.toString("hex")} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.nlink} ${st.size} ${extra}`);
      if (st.isDirectory()) visit(c);
    }
  };
  visit(Buffer.from(dir));
  return out;
}

/** stat(1) as the oracle: type, octal mode, owner, size, device numbers, link count. */
const stat = (p: string) => execFileSync("stat", ["-c", "%F|%a|%u:%g|%s|%t,%T|%h", p], { encoding: "utf8" }).trim();
const pyXattrs = (p: string) =>
  execFileSync("python3", ["-c", "import os,sys; print(sorted((k, os.getxattr(sys.argv[1],k,follow_symlinks=False).hex()) for k in os.listxattr(sys.argv[1], follow_symlinks=False)))", p], {
    encoding: "utf8",
  }).trim();

const bigData = { size: 9 * 1024 * 1024 + 3, read: (off: number, len: number) => new Uint8Array(len).map((_, i) => (off + i) % 251) };
const nonUtf8 = Buffer.from([0x6e, 0xff, 0xfe]);
const long = "L".repeat(255);

function fullTree(): MemoryTree {
  const nodes: Record<number, MemoryNodeInit> = {
    1: {
      kind: "dir",
      permissions: 0o751,
      uid: 5,
      gid: 6,
      entries: [
        { name: "ro", ino: 2 },
        { name: "suid", ino: 3 },
        { name: "link", ino: 4 },
        { name: "abs", ino: 5 },
        { name: "hard", ino: 3 },
        { name: "fifo", ino: 6 },
        { name: "null", ino: 7 },
        { name: "disk", ino: 8 },
        { name: "sock", ino: 9 },
        { name: nonUtf8, ino: 10 },
        { name: long, ino: 11 },
        { name: "big", ino: 12 },
        { name: "sgid", ino: 13 },
        { name: "weird", ino: 14 },
      ],
    },
    2: { kind: "dir", permissions: 0o555, entries: [{ name: "inside", ino: 15 }, { name: "hard2", ino: 3 }] },
    3: { kind: "file", data: "setuid program", permissions: 0o4755, uid: 1000, gid: 4294967294, xattrs: [{ key: Buffer.from("user.a"), value: Buffer.from([0, 1]) }, { key: Buffer.from("security.capability"), value: Buffer.from("0100000200200000000000000000000000000000", "hex") }] },
    4: { kind: "lnk", symlinkTarget: "../../outside/passwd", uid: 7, gid: 8, xattrs: [{ key: Buffer.from("trusted.l"), value: Buffer.from("x") }] },
    5: { kind: "lnk", symlinkTarget: Buffer.from([0x2f, 0xff]) },
    6: { kind: "fifo", permissions: 0o640, uid: 9 },
    7: { kind: "chr", major: 1, minor: 3, permissions: 0o666 },
    8: { kind: "blk", major: 259, minor: 70000, permissions: 0o660, gid: 6 },
    9: { kind: "sock" },
    10: { kind: "file", data: "bytes", permissions: 0o600 },
    11: { kind: "dir", permissions: 0o1777, entries: [{ name: "empty", ino: 16 }] },
    12: { kind: "file", data: bigData },
    13: { kind: "dir", permissions: 0o2775, gid: 50, entries: [] },
    14: { kind: "unknown" },
    15: { kind: "file", data: "in a read-only dir", permissions: 0o444 },
    16: { kind: "file", permissions: 0o640 },
  };
  return new MemoryTree(nodes);
}

describe("extract (spec §4)", () => {
  it("restores contents, modes, owners, hard links, symlinks, fifos, devices and xattrs; writes nothing outside DEST", async () => {
    const { ws, dest, outside } = workspace();
    const before = snapshot(ws);
    const stats = await extract(fullTree(), dest);
    expect(snapshot(ws, dest)).toEqual(before);
    expect(readFileSync(join(outside, "passwd"), "utf8")).toBe("original\n");

    expect(stat(dest)).toBe("directory|751|5:6|" + lstatSync(dest).size + "|0,0|" + lstatSync(dest).nlink);
    expect(stat(join(dest, "suid"))).toBe("regular file|4755|1000:4294967294|14|0,0|3");
    expect(lstatSync(join(dest, "hard")).ino).toBe(lstatSync(join(dest, "suid")).ino);
    expect(lstatSync(join(dest, "ro/hard2")).ino).toBe(lstatSync(join(dest, "suid")).ino);
    expect(pyXattrs(join(dest, "suid"))).toBe(
      "[('security.capability', '0100000200200000000000000000000000000000'), ('user.a', '0001')]",
    );
    expect(stat(join(dest, "ro"))).toMatch(/^directory\|555\|0:0\|/);
    expect(readFileSync(join(dest, "ro/inside"), "utf8")).toBe("in a read-only dir");
    expect(readlinkSync(join(dest, "link"))).toBe("../../outside/passwd");
    expect(stat(join(dest, "link"))).toMatch(/^symbolic link\|777\|7:8\|/);
    expect(pyXattrs(join(dest, "link"))).toBe("[('trusted.l', '78')]");
    expect(readlinkSync(join(dest, "abs"), "buffer")).toEqual(Buffer.from([0x2f, 0xff]));
    expect(stat(join(dest, "fifo"))).toBe("fifo|640|9:0|0|0,0|1");
    expect(stat(join(dest, "null"))).toBe("character special file|666|0:0|0|1,3|1");
    expect(stat(join(dest, "disk"))).toBe("block special file|660|0:6|0|103,11170|1");
    expect(readFileSync(Buffer.concat([Buffer.from(dest + "/"), nonUtf8]), "utf8")).toBe("bytes");
    expect(stat(join(dest, long))).toMatch(/^directory\|1777\|/);
    expect(stat(join(dest, long, "empty"))).toBe("regular empty file|640|0:0|0|0,0|1");
    expect(stat(join(dest, "sgid"))).toMatch(/^directory\|2775\|0:50\|/);
    const big = readFileSync(join(dest, "big"));
    expect(big.length).toBe(bigData.size);
    expect(big.equals(Buffer.from(bigData.read(0, bigData.size)))).toBe(true);
    expect(readdirSync(dest)).not.toContain("sock");
    expect(readdirSync(dest)).not.toContain("weird");
    expect(stats).toMatchObject({ files: 5, dirs: 4, symlinks: 2, hardlinks: 2, fifos: 1, devices: 2, bytes: bigData.size + 14 + 5 + 18 });
    expect(stats.skipped.map((s) => s.path.slice(dest.length))).toEqual(["/sock", "/weird"]);
  });

  it("without root privileges (asRoot: false) skips device nodes and keeps the extracting user as owner", async () => {
    const { dest } = workspace();
    const stats = await extract(fullTree(), dest, { asRoot: false });
    expect(stats.skipped.map((s) => s.path.slice(dest.length))).toEqual(["/null", "/disk", "/sock", "/weird"]);
    expect(stat(join(dest, "suid"))).toBe("regular file|4755|0:0|14|0,0|3");
  });

  it("refuses a non-empty DEST unless forced, and a DEST that is a file", async () => {
    const { ws, dest } = workspace();
    mkdirSync(dest);
    writeFileSync(join(dest, "keep"), "k");
    const t = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "f", ino: 2 }] }, 2: { kind: "file", data: "new" } });
    await expect(extract(t, dest)).rejects.toSatisfy((e: unknown) => isPfsError(e, ErrorCode.EXISTS) && /not empty/.test((e as Error).message));
    await extract(t, dest, { force: true });
    expect(readdirSync(dest).sort()).toEqual(["f", "keep"]);
    writeFileSync(join(ws, "file"), "x");
    await expect(extract(t, join(ws, "file"))).rejects.toThrow(/exists and is not a directory/);
  });
});

describe("extract: hostile images write nothing outside DEST", () => {
  const hostile: Array<[string, Uint8Array | string]> = [
    ["dot-dot", ".."],
    ["dot", "."],
    ["slash", "a/../../outside/passwd"],
    ["absolute", "/etc/passwd"],
    ["empty", ""],
    ["nul", "x\0y"],
  ];
  it.each(hostile)("rejects the name %s", async (_label, name) => {
    const { ws, dest, outside } = workspace();
    const before = snapshot(ws);
    const t = new MemoryTree({ 1: { kind: "dir", entries: [{ name, ino: 2 }] }, 2: { kind: "file", data: "pwned\n" } });
    await expect(extract(t, dest)).rejects.toSatisfy((e: unknown) => isPfsError(e, ErrorCode.FORMAT) && /not a single path component/.test((e as Error).message));
    expect(snapshot(ws, dest)).toEqual(before);
    expect(readFileSync(join(outside, "passwd"), "utf8")).toBe("original\n");
  });

  it("rejects a name that repeats (symlink first, then a directory through which files would be written)", async () => {
    const { ws, dest, outside } = workspace();
    const before = snapshot(ws);
    const t = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "evil", ino: 2 }, { name: "evil", ino: 3 }] },
      2: { kind: "lnk", symlinkTarget: outside },
      3: { kind: "dir", entries: [{ name: "passwd", ino: 4 }] },
      4: { kind: "file", data: "pwned\n" },
    });
    await expect(extract(t, dest)).rejects.toThrow(/entry "evil" appears twice/);
    expect(snapshot(ws, dest)).toEqual(before);
  });

  it("hard-links a symlink itself, never its target", async () => {
    const { ws, dest, outside } = workspace();
    const before = snapshot(ws);
    const t = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "l", ino: 2 }, { name: "l2", ino: 2 }] },
      2: { kind: "lnk", symlinkTarget: join(outside, "passwd") },
    });
    await extract(t, dest);
    expect(snapshot(ws, dest)).toEqual(before);
    expect(lstatSync(join(dest, "l2")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(outside, "passwd")).nlink).toBe(1);
  });

  it("stops at a directory loop instead of recursing forever", async () => {
    const { dest } = workspace();
    const t = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "d", ino: 2 }] }, 2: { kind: "dir", entries: [{ name: "up", ino: 1 }] } });
    await expect(extract(t, dest)).rejects.toThrow(/directory inode 1 is reached twice/);
  });

  it("with --force replaces a pre-existing symlink in DEST by a real directory instead of writing through it", async () => {
    const { ws, dest, outside } = workspace();
    mkdirSync(dest);
    symlinkSync(outside, join(dest, "etc"));
    writeFileSync(join(dest, "f"), "old");
    const before = snapshot(ws, dest);
    const t = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "etc", ino: 2 }, { name: "f", ino: 4 }] },
      2: { kind: "dir", entries: [{ name: "passwd", ino: 3 }] },
      3: { kind: "file", data: "pwned\n" },
      4: { kind: "lnk", symlinkTarget: "x" },
    });
    await extract(t, dest, { force: true });
    expect(snapshot(ws, dest)).toEqual(before);
    expect(readFileSync(join(outside, "passwd"), "utf8")).toBe("original\n");
    expect(lstatSync(join(dest, "etc")).isDirectory()).toBe(true);
    expect(readFileSync(join(dest, "etc/passwd"), "utf8")).toBe("pwned\n");
    expect(readlinkSync(join(dest, "f"))).toBe("x");
  });

  it("fails cleanly when a file's data is shorter than its size", async () => {
    const { dest } = workspace();
    const t = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "f", ino: 2 }] }, 2: { kind: "file", data: { size: 10, read: () => new Uint8Array(0) } } });
    await expect(extract(t, dest)).rejects.toThrow(/file data ends at 0 of 10 bytes/);
  });
});
