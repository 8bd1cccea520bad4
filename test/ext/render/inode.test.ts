import { statSync, lstatSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryTree } from "../../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage } from "../../../src/ext/index.ts";
import { TempDir, debugfs, e2fsck, withMount, xa } from "../helpers.ts";

const tree = (): MemoryTree =>
  new MemoryTree({
    1: {
      kind: "dir",
      entries: ["ids", "newdev", "olddev", "fast", "slow", "body", "block", "empty", "fifo", "sock", "unknown"].map((name, i) => ({ name, ino: 2 + i })),
    },
    2: { kind: "file", data: "ids", uid: 70000, gid: 4_000_000_000, permissions: 0o6755 },
    3: { kind: "blk", major: 259, minor: 1 << 19 },
    4: { kind: "chr", major: 4, minor: 64 },
    5: { kind: "lnk", symlinkTarget: "x".repeat(59) },
    6: { kind: "lnk", symlinkTarget: "y".repeat(300) },
    7: { kind: "file", data: "b", xattrs: [xa("user.k", "v"), xa("security.selinux", "system_u:object_r:bin_t:s0")] },
    8: { kind: "file", data: "c", xattrs: [xa("user.k", "v".repeat(300))] },
    9: { kind: "file" },
    10: { kind: "fifo" },
    11: { kind: "sock" },
    12: { kind: "unknown", permissions: 0o444, uid: 5 },
  });

describe("inode rendering", () => {
  const tmp = new TempDir();
  const img = tmp.file("i.img");
  const MTIME = 2 ** 32 + 12345; // past 2106: needs the epoch bits
  beforeAll(async () => {
    await exportImage(new ExtImage(planExtImage(tree(), { mtime: MTIME })), img);
  });
  afterAll(() => tmp.cleanup());

  it("passes e2fsck", () => {
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
  });

  it("stores 32-bit ids across the high/low halves and keeps setuid/setgid", () => {
    const s = debugfs(img, "stat /ids");
    expect(s).toMatch(/User:\s+70000\s+Group:\s+(4000000000|-294967296)\b/); // debugfs prints gid signed
    expect(s).toMatch(/Mode:\s+06755/);
  });

  it("encodes device numbers old-style when they fit in 8 bits, new-style otherwise", () => {
    expect(debugfs(img, "stat /olddev")).toMatch(/Device major\/minor number: 04:64 \(hex 04:40\)/);
    expect(debugfs(img, "stat /newdev")).toMatch(/Device major\/minor number: 259:524288 \(hex 103:80000\)/);
  });

  it("keeps symlinks of ≤ 59 bytes in the inode and longer ones in a block", () => {
    expect(debugfs(img, "stat /fast")).toMatch(/Fast link dest: "x{59}"/);
    const slow = debugfs(img, "stat /slow");
    expect(slow).not.toMatch(/Fast link dest/);
    expect(slow).toMatch(/Flags: 0x80000/);
    expect(slow).toMatch(/EXTENTS:\n\(0\):\d+/);
  });

  it("puts small xattr sets in the inode body and big ones in a block", () => {
    expect(debugfs(img, "stat /body")).toMatch(/File ACL: 0\b/);
    expect(debugfs(img, "ea_list /body")).toMatch(/security.selinux \(26\) = "system_u:object_r:bin_t:s0"/);
    expect(debugfs(img, "stat /block")).toMatch(/File ACL: [1-9]\d*/);
    expect(debugfs(img, "stat /block")).toMatch(/Blockcount: 16\b/); // data block + xattr block, 512-byte units
  });

  it("gives empty files an empty in-inode extent header, devices/fifos/sockets none", () => {
    expect(debugfs(img, "stat /empty")).toMatch(/Flags: 0x80000[\s\S]*EXTENTS:\n(\n|$)/);
    for (const p of ["/fifo", "/sock", "/olddev"]) expect(debugfs(img, `stat ${p}`)).toMatch(/Flags: 0x0\b/);
  });

  it("stores every time as the mtime option, epoch bits included, as the kernel reads it", async () => {
    const s = debugfs(img, "stat /ids");
    const lo = (MTIME % 2 ** 32).toString(16).padStart(8, "0");
    for (const t of ["ctime", "atime", "mtime", "crtime"]) expect(s).toMatch(new RegExp(`${t}: 0x${lo}:00000001`));
    await withMount(img, (d) => {
      for (const p of ["ids", "fast", "newdev"]) {
        const st = lstatSync(join(d, p));
        expect(st.mtimeMs / 1000).toBe(MTIME);
        expect(st.ctimeMs / 1000).toBe(MTIME);
      }
      expect(statSync(join(d, "unknown")).isFile()).toBe(true);
      expect(statSync(join(d, "unknown")).size).toBe(0);
    });
  });

  it("handles times before 1970", async () => {
    const neg = tmp.file("neg.img");
    await exportImage(new ExtImage(planExtImage(tree(), { mtime: -86400 })), neg);
    expect(e2fsck(neg).code).toBe(0);
    await withMount(neg, (d) => expect(statSync(join(d, "ids")).mtimeMs).toBe(-86400 * 1000));
  });
});
