/**
 * A generated "torture tree": every kind of object a PuzzleFS image and the
 * synthesized ext image must carry, in a few MB. Deterministic: the same
 * options give the same names, bytes, modes, owners and xattrs on every run
 * (file times are not part of the contract and are left alone).
 *
 * Dependency-free apart from @napi-rs/xattr; device nodes and fifos come from
 * mknod(1) (Node has no mknod), the socket from a Node unix-socket server
 * whose path is hard-linked before the server closes (libuv unlinks it).
 * As root it makes everything; otherwise it skips what needs privileges
 * (devices, foreign owners, trusted.* and security.* xattrs) and says so in
 * the summary. Importable by unit tests (no vitest, no harness state).
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  lchownSync,
  mkdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
} from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { setAttributeSync } from "@napi-rs/xattr";

export interface TortureOptions {
  /** Entries in the big directory (default 3000: several blocks, an htree index). */
  bigDirEntries?: number;
  /** Size of the pseudo-random multi-chunk file (default 1 MiB + 123: > 256 KiB max chunk). */
  randomBytes?: number;
  /** Seed for names and contents (default 1). */
  seed?: number;
}

export interface TortureSummary {
  root: string;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  fifos: number;
  sockets: number;
  xattrs: number;
  /** What was left out and why (not root, no mknod, ...). */
  skipped: string[];
}

/** xorshift32: a tiny deterministic byte source. */
export function prng(seed: number): (n: number) => Buffer {
  let x = seed >>> 0 || 0x9e3779b9;
  return (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  };
}

/** security.capability, VFS_CAP_REVISION_2 with the effective flag: cap_net_bind_service+ep. */
export function capabilityXattr(): Buffer {
  const v = Buffer.alloc(20);
  v.writeUInt32LE(0x02000001, 0); // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  v.writeUInt32LE(1 << 10, 4); // permitted: CAP_NET_BIND_SERVICE
  return v;
}

type P = string | Buffer;
const cat = (dir: P, name: P): Buffer => Buffer.concat([Buffer.from(dir), Buffer.from("/"), Buffer.from(name)]);

/** Create the tree under `dir` (which must not exist or is replaced). */
export async function generateTortureTree(dir: string, opts: TortureOptions = {}): Promise<TortureSummary> {
  const root = process.getuid?.() === 0;
  const rnd = prng(opts.seed ?? 1);
  const s: TortureSummary = {
    root: dir,
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    fifos: 0,
    sockets: 0,
    xattrs: 0,
    skipped: [],
  };
  rmSync(dir, { recursive: true, force: true });
  const mkdir = (p: P, mode = 0o755): Buffer => {
    const b = typeof p === "string" ? Buffer.from(join(dir, p)) : p;
    mkdirSync(b, { recursive: true });
    chmodSync(b, mode);
    s.dirs++;
    return b;
  };
  const file = (p: P, data: Uint8Array | string, mode = 0o644): Buffer => {
    const b = typeof p === "string" ? Buffer.from(join(dir, p)) : p;
    writeFileSync(b, data);
    chmodSync(b, mode);
    s.files++;
    return b;
  };
  const symlink = (target: P, p: string): void => {
    symlinkSync(Buffer.from(target), join(dir, p));
    s.symlinks++;
  };
  const xattr = (p: string, name: string, value: Uint8Array | string): void => {
    if (!root && !name.startsWith("user.")) {
      s.skipped.push(`${name} on ${p} (needs root)`);
      return;
    }
    setAttributeSync(join(dir, p), name, value);
    s.xattrs++;
  };
  const owner = (p: string, uid: number, gid: number): void => {
    if (!root) {
      s.skipped.push(`owner ${uid}:${gid} of ${p} (needs root)`);
      return;
    }
    lchownSync(join(dir, p), uid, gid);
  };
  const mknod = (p: string, type: "c" | "b" | "p", major?: number, minor?: number): void => {
    if (type !== "p" && !root) {
      s.skipped.push(`device ${p} (needs root)`);
      return;
    }
    const args = type === "p" ? [join(dir, p), "p"] : [join(dir, p), type, String(major), String(minor)];
    execFileSync("mknod", ["-m", type === "p" ? "0640" : "0660", ...args]);
    if (type === "p") s.fifos++;
    else s.devices++;
  };

  mkdir("");
  s.dirs--; // the root itself is not counted

  // Regular files: sizes around block and chunk boundaries.
  mkdir("files");
  file("files/empty", "");
  file("files/one-byte", "x");
  for (const n of [4095, 4096, 4097]) file(`files/block-${n}`, rnd(n));
  file("files/random-multi-chunk", rnd(opts.randomBytes ?? (1 << 20) + 123));
  const pattern = rnd(64 * 1024);
  file("files/repeated-3m", Buffer.concat(Array.from({ length: 48 }, () => pattern)));
  // A sparse file: a hole, then 4 KiB of data at 2 MiB.
  const sparse = file("files/sparse-2m", "");
  truncateSync(sparse, 2 << 20);
  const fd = openSync(sparse, "r+");
  writeSync(fd, rnd(4096), 0, 4096, (2 << 20) - 4096);
  closeSync(fd);
  file("files/text.txt", "PuzzleFS torture tree: plain text.\n".repeat(20));
  file("files/script.sh", "#!/bin/sh\necho torture\n", 0o755);

  // Hard links: a group of three across two directories, and a setuid pair.
  mkdir("hardlinks");
  mkdir("hardlinks/other");
  const hl = file("hardlinks/a", rnd(10_000));
  linkSync(hl, join(dir, "hardlinks/b"));
  linkSync(hl, join(dir, "hardlinks/other/c"));
  const su = file("hardlinks/setuid", "#!/bin/sh\n", 0o4755);
  linkSync(su, join(dir, "hardlinks/setuid-link"));
  s.hardlinks += 3;

  // Symlinks around the ext4 inline limit (59 bytes inline, 60+ in a block), and long ones.
  mkdir("symlinks");
  symlink("../files/one-byte", "symlinks/short");
  for (const n of [59, 60, 61]) symlink("t".repeat(n), `symlinks/len-${n}`);
  symlink(Array.from({ length: 1023 }, () => "abc/").join("") + "end", "symlinks/long-4095");
  symlink("does/not/exist", "symlinks/dangling");
  symlink("../files", "symlinks/to-dir");
  symlink("/etc/passwd", "symlinks/absolute");
  symlink(Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x74]), "symlinks/non-utf8-target");

  // Special files.
  mkdir("special");
  mknod("special/fifo", "p");
  mknod("special/null", "c", 1, 3);
  mknod("special/sda", "b", 8, 0);
  mknod("special/big-chr", "c", 300, 70000);
  mknod("special/max-blk", "b", 4095, 1048575);
  await makeSocket(join(dir, "special/socket"));
  s.sockets++;

  // Permission bits.
  mkdir("modes");
  file("modes/setuid", "", 0o4755);
  file("modes/setgid", "", 0o2755);
  file("modes/setuid-setgid", "", 0o6711);
  file("modes/no-perms", "", 0o000);
  file("modes/all-perms", "", 0o777);
  file("modes/sticky-file", "", 0o1644);
  mkdir("modes/sticky-dir", 0o1777);
  mkdir("modes/setgid-dir", 0o2775);
  mkdir("modes/private-dir", 0o700);

  // Owners, including 32-bit ids (above 65535, and the largest valid one).
  mkdir("owners");
  file("owners/uid-70000", "o");
  file("owners/uid-max", "o");
  file("owners/setuid-owned", "o");
  mkdir("owners/dir-1000");
  symlink("uid-70000", "owners/link-owned");
  owner("owners/uid-70000", 70000, 80000);
  owner("owners/uid-max", 4294967294, 4294967294);
  owner("owners/setuid-owned", 1234, 5678);
  owner("owners/dir-1000", 1000, 1000);
  owner("owners/link-owned", 12345, 54321);
  chmodSync(join(dir, "owners/setuid-owned"), 0o4750); // after chown, which clears setuid

  // Extended attributes (set last: chown would drop security.capability).
  mkdir("xattrs");
  file("xattrs/user", "x");
  xattr("xattrs/user", "user.a", "1");
  xattr("xattrs/user", "user.empty", "");
  file("xattrs/trusted", "x");
  xattr("xattrs/trusted", "trusted.overlay.opaque", "y");
  file("xattrs/capability", "#!/bin/sh\n", 0o755);
  xattr("xattrs/capability", "security.capability", capabilityXattr());
  file("xattrs/big-value", "x");
  xattr("xattrs/big-value", "user.big", rnd(3000)); // too big for the inode: an xattr block
  file("xattrs/many", "x");
  for (let i = 0; i < 24; i++) xattr("xattrs/many", `user.attr-${String(i).padStart(2, "0")}`, `value ${i}`);
  for (const f of ["xattrs/same-1", "xattrs/same-2"]) {
    // Identical sets that spill out of the inode: ext can share one block.
    file(f, f);
    xattr(f, "user.shared", Buffer.alloc(2000, 0x5a));
    xattr(f, "user.also", "same");
  }
  mkdir("xattrs/dir");
  xattr("xattrs/dir", "user.on-dir", "d");
  symlink("../files/text.txt", "xattrs/symlink");
  xattr("xattrs/symlink", "trusted.on-symlink", "l"); // user.* is not allowed on symlinks

  // Names: non-UTF-8 bytes, 255-byte names (ASCII and multi-byte UTF-8), awkward characters.
  const names = mkdir("names");
  file(cat(names, Buffer.from([0x6e, 0xff, 0xfe, 0x80])), "invalid utf-8");
  file(cat(names, Buffer.from("caf\xe9", "latin1")), "latin-1 e-acute");
  file(cat(names, "a".repeat(255)), "255 ascii bytes");
  file(cat(names, "é".repeat(127) + "x"), "255 utf-8 bytes");
  const longDir = mkdir(cat(names, "d".repeat(255)));
  file(cat(longDir, "inside"), "in a 255-byte directory");
  for (const n of ["with space", "-dash", "quote'n", 'dq"x', "back\\slash", ".hidden", "tab\tx", "star*?[x]"]) {
    file(cat(names, n), n);
  }

  // A directory with thousands of entries (several blocks: ext needs an htree index).
  const big = mkdir("bigdir");
  const count = opts.bigDirEntries ?? 3000;
  for (let i = 0; i < count; i++) {
    const pad = "x".repeat(i % 40);
    file(cat(big, `entry-${String(i).padStart(5, "0")}${pad}`), i % 7 === 0 ? rnd(i % 300) : "");
  }

  // Depth, and an empty directory.
  let deep = "deep";
  for (let i = 0; i < 32; i++) deep += `/level-${i}`;
  mkdir(deep);
  s.dirs += 32;
  file(`${deep}/bottom`, "bottom");
  mkdir("empty-dir");
  return s;
}

/** Create a unix socket file at `path` that outlives this process's server. */
async function makeSocket(path: string): Promise<void> {
  const tmp = `${path}.listening`;
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(tmp, resolve);
  });
  linkSync(tmp, path);
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  rmSync(tmp, { force: true });
}
