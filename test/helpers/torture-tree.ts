/**
 * Generated source trees for builder tests and benches (seeded, so every run
 * makes the same bytes):
 *  - `tortureSpec`: every object kind PuzzleFS stores — regular files of 0
 *    bytes and of several chunks, hard links (also of a symlink), symlinks
 *    (relative, absolute, dangling, long, non-UTF-8), xattrs in the user.,
 *    trusted. and security.capability namespaces (also empty values and on
 *    directories and symlinks), fifos, sockets, chr/blk devices with
 *    major/minor > 255, setuid/setgid/sticky bits, uid/gid > 65535,
 *    non-UTF-8 names and 255-byte names;
 *  - `olderTortureSpec`: a plausible previous version of it (files that will
 *    change, files and directories that will be deleted), for delta builds;
 *  - `textBytes` / `randomBytes`: compressible and incompressible data.
 * Trees are created by helpers/tree.ts (system calls via Node and Python,
 * not the code under test). Needs root (chown, mknod, trusted.* xattrs).
 */
import { execFileSync } from "node:child_process";
import { PYTHON, makeTree, type TreeSpec } from "./tree.ts";

/** mulberry32: a tiny seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(r() * 4294967296), i);
  for (let i = n - (n % 4); i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

const WORDS = (
  "the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod " +
  "tempor incididunt ut labore et dolore magna aliqua config value path file image layer chunk block inode"
).split(" ");

/** Text-like bytes (zstd -3 compresses them roughly 3–4×). */
export function textBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = WORDS[Math.floor(r() * WORDS.length)]! + (r() < 0.12 ? "\n" : r() < 0.05 ? `=${Math.floor(r() * 1e6)} ` : " ");
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

/** A valid VFS_CAP_REVISION_2 security.capability value: effective, permitted = CAP_NET_BIND_SERVICE. */
export const CAPABILITY = Buffer.from("0100000200040000000000000000000000000000", "hex");

const b = (s: string | number[]): Buffer => (typeof s === "string" ? Buffer.from(s, "latin1") : Buffer.from(s));
const LONG = "n".repeat(255);
const LONG_DIR = "d".repeat(255);

export interface TortureOptions {
  seed?: number;
  /** Size of the largest (multi-chunk) file; default 900 KiB (several 16–256 KiB chunks). */
  bigFileBytes?: number;
}

export function tortureSpec(opts: TortureOptions = {}): TreeSpec {
  const seed = opts.seed ?? 1;
  const big = opts.bigFileBytes ?? 900 * 1024;
  // Half text, half random: with -c some chunks compress and some are stored raw.
  const bigData = Buffer.concat([textBytes(big >> 1, seed), randomBytes(big - (big >> 1), seed + 1)]);
  return [
    ["empty", { type: "file" }],
    ["hello.txt", { type: "file", data: "hello, world\n", uid: 70000, gid: 80000, xattrs: { "user.a": "1", "user.empty": "" } }],
    ["big.bin", { type: "file", data: bigData, mode: 0o640 }],
    ["setuid", { type: "file", data: "#!/bin/sh\n", mode: 0o4755 }],
    ["setgid", { type: "file", data: textBytes(5000, seed + 2), mode: 0o2711, gid: 4000000000 }],
    ["cap", { type: "file", data: "x", mode: 0o755, xattrs: { "security.capability": CAPABILITY, "trusted.t": b([0, 1, 2, 255]) } }],
    ["hard1", { type: "file", data: randomBytes(70000, seed + 3) }],
    ["dir", { type: "dir", mode: 0o2775, uid: 1000, gid: 1000, xattrs: { "user.dir": "yes" } }],
    ["dir/hard2", { type: "hardlink", to: "hard1" }],
    ["dir/sub", { type: "dir", mode: 0o700 }],
    ["dir/sub/hard3", { type: "hardlink", to: "hard1" }],
    ["dir/sub/deep.txt", { type: "file", data: textBytes(3000, seed + 4), uid: 65536, gid: 65537 }],
    ["tmp", { type: "dir", mode: 0o1777 }],
    ["tmp/fifo", { type: "fifo", mode: 0o620 }],
    ["tmp/sock", { type: "sock", mode: 0o755 }],
    ["dev", { type: "dir" }],
    ["dev/null", { type: "chr", major: 1, minor: 3, mode: 0o666 }],
    ["dev/bigchr", { type: "chr", major: 4095, minor: 1048575, mode: 0o600, uid: 100000 }],
    ["dev/sda", { type: "blk", major: 8, minor: 0, mode: 0o660, gid: 6 }],
    ["dev/nvme", { type: "blk", major: 259, minor: 70000, mode: 0o640 }],
    ["links", { type: "dir" }],
    ["links/rel", { type: "symlink", target: "../hello.txt" }],
    ["links/abs", { type: "symlink", target: "/etc/passwd" }],
    ["links/dangling", { type: "symlink", target: "does/not/exist", xattrs: { "trusted.on-link": "v" } }],
    ["links/long", { type: "symlink", target: "x/".repeat(500) + "end" }],
    ["links/bytes", { type: "symlink", target: b([0x74, 0xff, 0x80, 0x2f, 0x61]) }],
    ["links/rel-hard", { type: "hardlink", to: "links/rel" }],
    [b("caf\xe9"), { type: "file", data: "latin-1 name\n" }],
    [b([0xff, 0xfe, 0x2d, 0x62]), { type: "dir" }],
    [Buffer.concat([b([0xff, 0xfe, 0x2d, 0x62]), b("/"), b([0xc3, 0x28])]), { type: "file", data: "invalid utf-8 twice\n" }],
    ["nl\nname", { type: "file", data: "newline in name\n" }],
    [LONG, { type: "file", data: "255-byte name\n" }],
    [LONG_DIR, { type: "dir" }],
    [`${LONG_DIR}/${LONG}`, { type: "file", data: "two long names\n" }],
  ];
}

/** An earlier version of tortureSpec: some files differ, some names will be deleted (whiteouts). */
export function olderTortureSpec(opts: TortureOptions = {}): TreeSpec {
  const seed = opts.seed ?? 1;
  return [
    ["hello.txt", { type: "file", data: "hello, old world\n" }],
    ["big.bin", { type: "file", data: textBytes(opts.bigFileBytes ?? 900 * 1024, seed) }],
    ["gone.txt", { type: "file", data: "deleted later\n" }],
    ["hard1", { type: "file", data: randomBytes(70000, seed + 3) }],
    ["hard-gone", { type: "hardlink", to: "hard1" }],
    ["dir", { type: "dir" }],
    ["dir/old-sub", { type: "dir" }],
    ["dir/old-sub/f", { type: "file", data: "f" }],
    ["dir/sub", { type: "dir" }],
    ["dir/sub/deep.txt", { type: "file", data: "older\n" }],
    ["links", { type: "dir" }],
    ["links/rel", { type: "symlink", target: "../gone.txt" }],
  ];
}

/** Create `spec` under `root` plus a root with uid/gid > 65535, mode 0o751 and an xattr. */
export function makeTortureTree(root: string, spec: TreeSpec): void {
  makeTree(root, spec, { mode: 0o751, uid: 123456, gid: 654321 });
  execFileSync(PYTHON, ["-c", "import os, sys; os.setxattr(sys.argv[1], 'user.root', b'r00t')", root]);
}
