/**
 * Shared helpers for the ext tests: trees that exercise every object kind,
 * exporting to temp files, and running the real peers (e2fsck, debugfs,
 * the kernel's ext4 via a loop mount) against the result.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryTree, type MemoryNodeInit, type Tree, type TreeXattr } from "../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage, type ExtOptions } from "../../src/ext/index.ts";

const enc = new TextEncoder();
export const xa = (key: string, value: string | Uint8Array): TreeXattr => ({ key: enc.encode(key), value: typeof value === "string" ? enc.encode(value) : value });

/** Deterministic pseudo-random bytes (xorshift32), so fixtures need no files. */
export function prng(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A POSIX ACL in the VFS xattr format (version 2). */
export function vfsAcl(entries: Array<[tag: number, perm: number, id: number]>): Uint8Array {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([t, p, id], i) => {
    b.writeUInt16LE(t, 4 + i * 8);
    b.writeUInt16LE(p, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return new Uint8Array(b);
}

/** A name of `n` bytes made of letters. */
export const longName = (n: number, c = "n"): string => c.repeat(n);

/**
 * Every object kind the issue lists: files of edge sizes, dirs, short and
 * long symlinks, hard links across directories, fifo, socket, char and
 * block devices (old and new encoding), setuid/setgid/sticky, 32-bit ids,
 * xattrs in the inode and in shared blocks, ACLs, non-UTF-8 and 255-byte
 * names, an "unknown" node, and a directory big enough for an htree.
 */
export function tortureTree(opts: { bigDir?: number } = {}): MemoryTree {
  const big = opts.bigDir ?? 3000;
  const nodes: Record<number, MemoryNodeInit> = {};
  let next = 100;
  const root: Array<{ name: string | Uint8Array; ino: number }> = [];
  const add = (dir: Array<{ name: string | Uint8Array; ino: number }>, name: string | Uint8Array, n: MemoryNodeInit): number => {
    const ino = next++;
    nodes[ino] = n;
    dir.push({ name, ino });
    return ino;
  };
  const blockXattrs = [xa("user.big", "v".repeat(300)), xa("user.other", "w".repeat(100)), xa("trusted.t", "trusted value")];
  for (const [name, size] of [["empty", 0], ["one", 1], ["b4095", 4095], ["b4096", 4096], ["b4097", 4097], ["r1m", 1 << 20]] as const) {
    add(root, name, { kind: "file", data: prng(size + 7, size) });
  }
  const shared = add(root, "hardlinked", { kind: "file", data: "linked\n", uid: 70000, gid: 80000, permissions: 0o640 });
  add(root, "setuid", { kind: "file", data: "#!/bin/sh\n", permissions: 0o4755 });
  add(root, "setgid", { kind: "file", data: "x", permissions: 0o2711, uid: 4_000_000_000, gid: 4_294_967_294 });
  add(root, "fifo", { kind: "fifo", permissions: 0o600 });
  add(root, "sock", { kind: "sock", permissions: 0o777 });
  add(root, "null", { kind: "chr", major: 1, minor: 3, permissions: 0o666 });
  add(root, "sda", { kind: "blk", major: 8, minor: 0, permissions: 0o660, gid: 6 });
  add(root, "bigdev", { kind: "chr", major: 300, minor: 70000 });
  add(root, "lnk-short", { kind: "lnk", symlinkTarget: "one" });
  add(root, "lnk-59", { kind: "lnk", symlinkTarget: "d/".repeat(29) + "x" });
  add(root, "lnk-60", { kind: "lnk", symlinkTarget: "e/".repeat(30) });
  add(root, "lnk-4095", { kind: "lnk", symlinkTarget: "f/".repeat(2047) + "g" });
  add(root, "unknown", { kind: "unknown", permissions: 0o600 });
  add(root, Uint8Array.of(0xff, 0xfe, 0x80, 0x41), { kind: "file", data: "not utf-8 name" });
  add(root, longName(255), { kind: "file", data: "long name" });
  add(root, "x", { kind: "file", data: "short name" });
  add(root, "xattr-ibody", { kind: "file", data: "a", xattrs: [xa("user.a", "1"), xa("security.capability", Uint8Array.of(1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))] });
  for (let i = 0; i < 3; i++) add(root, `xattr-block-${i}`, { kind: "file", data: `b${i}`, xattrs: blockXattrs });
  add(root, "xattr-empty-value", { kind: "file", xattrs: [xa("user.empty", "")] });
  add(root, "acl", {
    kind: "file",
    xattrs: [xa("system.posix_acl_access", vfsAcl([[1, 6, 0xffffffff], [2, 4, 1234], [4, 4, 0xffffffff], [8, 5, 99], [0x10, 6, 0xffffffff], [0x20, 4, 0xffffffff]]))],
  });
  const sticky: Array<{ name: string; ino: number }> = [];
  add(root, "tmp", { kind: "dir", permissions: 0o1777, entries: sticky, xattrs: [xa("user.dir", "on a dir")] });
  add(sticky, "link2", { kind: "lnk", symlinkTarget: "../hardlinked", xattrs: [xa("trusted.onlink", "yes")] });
  sticky.push({ name: "hardlink-2", ino: shared });
  const deep: Array<{ name: string; ino: number }> = [];
  add(root, "deep", { kind: "dir", entries: deep });
  let cur = deep;
  for (let d = 0; d < 20; d++) {
    const sub: Array<{ name: string; ino: number }> = [];
    add(cur, `level${d}`, { kind: "dir", entries: sub, permissions: 0o750, uid: d });
    cur = sub;
  }
  cur.push({ name: "hardlink-3", ino: shared });
  const bigDir: Array<{ name: string; ino: number }> = [];
  add(root, "bigdir", { kind: "dir", entries: bigDir });
  for (let i = 0; i < big; i++) add(bigDir, `entry-with-a-longish-name-${i.toString().padStart(6, "0")}`, i % 10 === 0 ? { kind: "dir" } : { kind: "file", data: `${i}` });
  nodes[1] = { kind: "dir", entries: root, permissions: 0o755 };
  return new MemoryTree(nodes);
}

export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), "pfs-ext-"));
  file(name: string): string {
    return join(this.path, name);
  }
  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export async function exportTree(tree: MemoryTree, path: string, opts: ExtOptions = { mtime: 1_700_000_000, digest: "sha256:test" }): Promise<ExtImage> {
  const dev = new ExtImage(planExtImage(tree, opts));
  await exportImage(dev, path);
  return dev;
}

export interface ToolResult {
  code: number;
  out: string;
}

export function e2fsck(path: string): ToolResult {
  const r = spawnSync("e2fsck", ["-fn", path], { encoding: "utf8" });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

export function debugfs(path: string, cmd: string): string {
  return execFileSync("debugfs", ["-R", cmd, path], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 << 20 });
}

/** Loop-mount `img` read-only for the duration of `fn`. */
export async function withMount<T>(img: string, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "pfs-mnt-"));
  execFileSync("mount", ["-o", "loop,ro", "-t", "ext4", img, dir]);
  try {
    return await fn(dir);
  } finally {
    execFileSync("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
export const randomSeed = (): number => randomBytes(4).readUInt32LE(0);

const S_IFMT = 0o170000;
const KIND_MODE: Record<string, number> = { file: 0o100000, dir: 0o040000, lnk: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000, sock: 0o140000, unknown: 0o100000 };

/** getfattr's octal escapes (\ooo, \\) back to bytes. */
function unescapeGetfattr(s: string): Buffer {
  const out: number[] = [];
  const b = Buffer.from(s, "latin1");
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x5c && i + 3 < b.length + 0 && /^[0-7]{3}$/.test(b.subarray(i + 1, i + 4).toString("latin1"))) {
      out.push(parseInt(b.subarray(i + 1, i + 4).toString("latin1"), 8));
      i += 3;
    } else out.push(b[i]!);
  }
  return Buffer.from(out);
}

/** All xattrs under `dir` as getfattr sees them: path (latin1) → name → hex value. */
export function getfattrTree(dir: string): Map<string, Map<string, string>> {
  const r = spawnSync("getfattr", ["-R", "-d", "-m", "-", "-h", "-e", "hex", "--absolute-names", dir], { maxBuffer: 512 << 20 });
  const out = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | null = null;
  for (const line of r.stdout.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      cur = new Map();
      out.set(unescapeGetfattr(line.slice(8)).toString("latin1"), cur);
    } else if (cur && line.includes("=")) {
      const eq = line.indexOf("=");
      cur.set(unescapeGetfattr(line.slice(0, eq)).toString("latin1"), line.slice(eq + 1).replace(/^0x/, ""));
    }
  }
  return out;
}

/**
 * Compare a mounted image with the tree it was made from: names, types,
 * permissions, owners, sizes, link counts, device numbers, link targets,
 * contents (sha256), xattrs (getfattr) and hard-link groups (st_ino).
 * Returns the differences; empty means identical.
 */
export async function compareMounted(tree: Tree, mnt: string, opts: { contents?: boolean } = {}): Promise<string[]> {
  const fs = await import("node:fs");
  const diffs: string[] = [];
  const xattrs = getfattrTree(mnt);
  const refs = new Map<number, number>();
  const subdirs = new Map<number, number>();
  const seen = (n: number): void => void refs.set(n, (refs.get(n) ?? 0) + 1);
  const walk = (ino: number): void => {
    for (const e of tree.node(ino).entries ?? []) {
      seen(e.ino);
      if (tree.node(e.ino).kind === "dir") {
        subdirs.set(ino, (subdirs.get(ino) ?? 0) + 1);
        walk(e.ino);
      }
    }
  };
  walk(tree.rootIno);
  const stIno = new Map<number, number>();
  const owner = new Map<number, number>();
  const check = async (ino: number, path: Buffer, shown: string, isRoot: boolean): Promise<void> => {
    const n = tree.node(ino);
    const st = fs.lstatSync(path);
    const d = (what: string, got: unknown, want: unknown): void => {
      if (got !== want) diffs.push(`${shown}: ${what}: got ${String(got)}, want ${String(want)}`);
    };
    d("type", st.mode & S_IFMT, KIND_MODE[n.kind]);
    d("permissions", (st.mode & 0o7777).toString(8), n.permissions.toString(8));
    d("uid", st.uid, n.uid);
    d("gid", st.gid, n.gid);
    const lpf = isRoot && !(n.entries ?? []).some((e) => Buffer.from(e.name).toString("latin1") === "lost+found") ? 1 : 0;
    const nlink = n.kind === "dir" ? 2 + (subdirs.get(ino) ?? 0) + lpf : (refs.get(ino) ?? 1);
    d("nlink", st.nlink, nlink > 65000 && n.kind === "dir" ? 1 : nlink);
    if (stIno.has(ino)) d("hard link st_ino", st.ino, stIno.get(ino));
    else {
      if (owner.has(st.ino)) diffs.push(`${shown}: shares st_ino ${st.ino} with tree inode ${owner.get(st.ino)}`);
      stIno.set(ino, st.ino);
      owner.set(st.ino, ino);
    }
    if (n.kind === "file" || n.kind === "unknown") {
      d("size", st.size, n.kind === "file" ? n.size : 0);
      if (opts.contents !== false && n.kind === "file" && n.size <= 256 << 20) {
        d("sha256", sha256(fs.readFileSync(path)), sha256(await tree.readFile(ino, 0, n.size)));
      }
    }
    if (n.kind === "lnk") d("link target", fs.readlinkSync(path, { encoding: "buffer" }).toString("latin1"), Buffer.from(n.symlinkTarget!).toString("latin1"));
    if (n.kind === "chr" || n.kind === "blk") {
      const r = st.rdev;
      d("major", (Math.floor(r / 256) & 0xfff) | (Math.floor(r / 2 ** 32) & ~0xfff), n.major);
      d("minor", (r & 0xff) | (Math.floor(r / 4096) & ~0xff), n.minor);
    }
    const want = new Map(n.xattrs.map((x) => [Buffer.from(x.key).toString("latin1"), Buffer.from(x.value).toString("hex")]));
    const got = xattrs.get(path.toString("latin1")) ?? new Map<string, string>();
    d("xattrs", JSON.stringify([...got].sort()), JSON.stringify([...want].sort()));
    if (n.kind === "dir") {
      const names = fs.readdirSync(path, { encoding: "buffer" }).map((b) => b.toString("latin1")).sort();
      const expected = (n.entries ?? []).map((e) => Buffer.from(e.name).toString("latin1"));
      if (lpf) expected.push("lost+found");
      d("entries", JSON.stringify(names), JSON.stringify(expected.sort()));
      for (const e of n.entries ?? []) {
        const p = Buffer.concat([path, Buffer.from("/"), Buffer.from(e.name)]);
        await check(e.ino, p, `${shown}/${Buffer.from(e.name).toString("latin1")}`, false);
      }
    }
  };
  await check(tree.rootIno, Buffer.from(mnt), "", true);
  return diffs;
}

/**
 * Write only the metadata regions of an image (file data left as holes):
 * enough for e2fsck and debugfs, which never read file contents, on images
 * far too big to export.
 */
export async function exportMeta(dev: ExtImage, path: string): Promise<void> {
  const { open } = await import("node:fs/promises");
  const { RK, classOf } = await import("../../src/ext/layout/regions.ts");
  const fh = await open(path, "w");
  try {
    await fh.truncate(dev.size);
    const rt = dev.plan.regions;
    for (let i = 0; i < rt.count; i++) {
      if (classOf(rt.kind[i]!) !== "meta" || rt.kind[i] === RK.FILE) continue;
      const s = rt.start[i]! * 4096;
      const n = rt.len[i]! * 4096;
      for (let at = s; at < s + n; at += 1 << 22) {
        const len = Math.min(1 << 22, s + n - at);
        await fh.write(await dev.readAt(at, len), 0, len, at);
      }
    }
  } finally {
    await fh.close();
  }
}

/** A generator file of `size` bytes: zeros except byte (i·stride) = i mod 251 + 1, cheap to verify anywhere. */
export function markedFile(size: number, stride: number): { size: number; read(off: number, len: number): Uint8Array } {
  return {
    size,
    read(off, len) {
      const b = new Uint8Array(len);
      for (let k = Math.ceil(off / stride); k * stride < off + len; k++) b[k * stride - off] = (k % 251) + 1;
      return b;
    },
  };
}
