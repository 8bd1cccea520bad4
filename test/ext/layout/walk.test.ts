import { describe, expect, it } from "vitest";
import { ErrorCode, isPfsError } from "../../../src/common/errors.ts";
import { MemoryTree, type MemoryNodeInit } from "../../../src/puzzlefs/tree.ts";
import { FT, INO } from "../../../src/ext/constants.ts";
import { IF } from "../../../src/ext/layout/inodes.ts";
import { resolveOptions } from "../../../src/ext/layout/options.ts";
import { walk } from "../../../src/ext/layout/walk.ts";
import { xa } from "../helpers.ts";

const plan = (nodes: Record<number, MemoryNodeInit>) => walk(new MemoryTree(nodes), resolveOptions({ mtime: 0 }));

function refuses(nodes: Record<number, MemoryNodeInit>, re: RegExp): void {
  let err: unknown;
  try {
    plan(nodes);
  } catch (e) {
    err = e;
  }
  expect(isPfsError(err, ErrorCode.UNSUPPORTED), String(err)).toBe(true);
  expect((err as Error).message).toMatch(re);
}

describe("walk", () => {
  it("numbers root 2, lost+found 11, then breadth-first from 12, and counts links", () => {
    const w = plan({
      1: { kind: "dir", entries: [{ name: "a", ino: 5 }, { name: "d", ino: 6 }, { name: "b", ino: 5 }] },
      5: { kind: "file", data: "x" },
      6: { kind: "dir", entries: [{ name: "c", ino: 5 }, { name: "e", ino: 7 }] },
      7: { kind: "dir" },
    });
    const { inodes } = w;
    expect(w.synthLostFound).toBe(true);
    expect(inodes.count).toBe(14);
    expect([...inodes.treeIno.subarray(12, 15)]).toEqual([5, 6, 7]);
    expect(inodes.ft[INO.LOST_FOUND]).toBe(FT.DIR);
    expect(inodes.flags[INO.LOST_FOUND]! & IF.SYNTH_LPF).toBeTruthy();
    expect(inodes.nlink[12]).toBe(3); // hard links
    expect(inodes.nlink[INO.ROOT]).toBe(4); // '.', '..', d/.., lost+found/..
    expect(inodes.nlink[13]).toBe(3);
    expect(inodes.parent[14]).toBe(13);
    expect(inodes.parent[INO.ROOT]).toBe(INO.ROOT);
  });

  it("uses the tree's own lost+found as inode 11", () => {
    const w = plan({ 1: { kind: "dir", entries: [{ name: "z", ino: 3 }, { name: "lost+found", ino: 2 }] }, 2: { kind: "dir" }, 3: { kind: "file" } });
    expect(w.synthLostFound).toBe(false);
    expect(w.inodes.treeIno[INO.LOST_FOUND]).toBe(2);
    expect(w.inodes.treeIno[12]).toBe(3);
    expect(w.warnings).toEqual([]);
  });

  it("sizes data: file blocks, slow symlinks, xattrs in the body or a shared block, htree flags", () => {
    const big = [xa("user.v", "v".repeat(200))];
    const entries = Array.from({ length: 400 }, (_, i) => ({ name: `entry-number-${i}`, ino: 10 }));
    const w = plan({
      1: { kind: "dir", entries: [{ name: "f", ino: 2 }, { name: "s", ino: 3 }, { name: "l", ino: 4 }, { name: "x1", ino: 5 }, { name: "x2", ino: 6 }, { name: "big", ino: 7 }] },
      2: { kind: "file", data: new Uint8Array(8193) },
      3: { kind: "lnk", symlinkTarget: "s".repeat(59), xattrs: [xa("user.a", "b")] },
      4: { kind: "lnk", symlinkTarget: "l".repeat(60) },
      5: { kind: "file", xattrs: big },
      6: { kind: "file", xattrs: big },
      7: { kind: "dir", entries },
      10: { kind: "file" },
    });
    const i = w.inodes;
    expect(i.nblocks[12]).toBe(3);
    expect(i.flags[13]! & IF.SLOW_SYMLINK).toBe(0);
    expect(i.flags[13]! & IF.XATTR_IBODY).toBeTruthy();
    expect(i.flags[14]! & IF.SLOW_SYMLINK).toBeTruthy();
    expect(i.nblocks[14]).toBe(1);
    expect(i.xattrBlock[15]).toBe(1);
    expect(i.xattrBlock[16]).toBe(1); // shared
    expect(w.xattrBlocks.refcount[0]).toBe(2);
    expect(i.flags[17]! & IF.HTREE).toBeTruthy();
    expect(i.nlink[18]).toBe(400);
  });

  it("maps an unknown node to an empty regular file", () => {
    const w = plan({ 1: { kind: "dir", entries: [{ name: "u", ino: 2 }] }, 2: { kind: "unknown", data: "ignored" } });
    expect(w.inodes.ft[12]).toBe(FT.REG_FILE);
  });

  it("never reads file data", () => {
    const t = new MemoryTree({ 1: { kind: "dir", entries: [{ name: "f", ino: 2 }] }, 2: { kind: "file", data: "content" } });
    walk(t, resolveOptions({ mtime: 0 }));
    expect(t.readFileCalls).toBe(0);
  });

  it("refuses what ext4 cannot hold, naming the path", () => {
    const root = (entries: MemoryNodeInit["entries"]): MemoryNodeInit => ({ kind: "dir", entries });
    refuses({ 1: root([{ name: "x".repeat(256), ino: 2 }]), 2: { kind: "file" } }, /255/);
    refuses({ 1: root([{ name: "", ino: 2 }]), 2: { kind: "file" } }, /empty name/);
    refuses({ 1: root([{ name: "a/b", ino: 2 }]), 2: { kind: "file" } }, /'\/'/);
    refuses({ 1: root([{ name: "..", ino: 2 }]), 2: { kind: "file" } }, /named/);
    refuses({ 1: root([{ name: "a", ino: 2 }, { name: "a", ino: 3 }]), 2: { kind: "file" }, 3: { kind: "file" } }, /appears twice/);
    refuses({ 1: root([{ name: "d", ino: 2 }, { name: "e", ino: 2 }]), 2: { kind: "dir" } }, /\/e: directory is linked more than once/);
    refuses({ 1: root([{ name: "d", ino: 2 }]), 2: root([{ name: "up", ino: 1 }]) }, /\/d\/up: directory is linked more than once/);
    refuses({ 1: root([{ name: "l", ino: 2 }]), 2: { kind: "lnk", symlinkTarget: "x".repeat(4096) } }, /\/l: symlink target of 4096 bytes/);
    refuses({ 1: root([{ name: "l", ino: 2 }]), 2: { kind: "lnk", symlinkTarget: "" } }, /symlink target of 0 bytes/);
    refuses({ 1: root([{ name: "l", ino: 2 }]), 2: { kind: "lnk", symlinkTarget: "a\0b" } }, /NUL/);
    refuses({ 1: root([{ name: "c", ino: 2 }]), 2: { kind: "chr", major: 4096, minor: 0 } }, /device 4096:0/);
    refuses({ 1: root([{ name: "c", ino: 2 }]), 2: { kind: "blk", major: 1, minor: 1 << 20 } }, /20-bit minor/);
    refuses({ 1: root([{ name: "f", ino: 2 }]), 2: { kind: "file", uid: 2 ** 32 } }, /32 bits/);
    refuses({ 1: root([{ name: "f", ino: 2 }]), 2: { kind: "file", data: { size: 2 ** 44 + 1, read: () => new Uint8Array() } } }, /16 TiB/);
    refuses({ 1: root([{ name: "f", ino: 2 }]), 2: { kind: "file", xattrs: [xa("os2.name", "v")] } }, /namespaces ext4 stores/);
    expect(() => plan({ 1: root([{ name: "f", ino: 2 }]), 2: { kind: "file", data: { size: -1, read: () => new Uint8Array() } } })).toThrow(/impossible file size -1/);
    refuses({ 1: root([{ name: "f", ino: 2 }]), 2: { kind: "file", xattrs: [xa("user.big", "v".repeat(5000))] } }, /more than one 4096-byte block/);
  });

  it("refuses a file with more than 65000 hard links", () => {
    const entries = Array.from({ length: 65001 }, (_, i) => ({ name: `l${i}`, ino: 2 }));
    refuses({ 1: { kind: "dir", entries }, 2: { kind: "file" } }, /65000 hard links/);
  });

  it("gives a directory with more than 65000 subdirectories nlink 1 (dir_nlink)", () => {
    const nodes: Record<number, MemoryNodeInit> = {};
    const entries = [];
    for (let i = 0; i < 65000; i++) {
      nodes[10 + i] = { kind: "dir" };
      entries.push({ name: `d${i}`, ino: 10 + i });
    }
    nodes[2] = { kind: "dir", entries };
    nodes[1] = { kind: "dir", entries: [{ name: "many", ino: 2 }] };
    const w = plan(nodes);
    expect(w.inodes.nlink[12]).toBe(1);
    expect(w.inodes.nlink[13]).toBe(2);
  });
});
