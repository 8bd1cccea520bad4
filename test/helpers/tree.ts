/**
 * Test helper: create a directory tree with exact types, modes, owners,
 * xattrs and device numbers (needs root for chown/mknod; tests run as root).
 * Creation uses system tools and Node's fs, not the code under test.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, linkSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type TreeNodeSpec = (
  | { type: "file"; data?: string | Uint8Array }
  | { type: "dir" }
  | { type: "symlink"; target: string | Buffer }
  | { type: "hardlink"; to: string | Buffer }
  | { type: "fifo" }
  | { type: "sock" }
  | { type: "chr" | "blk"; major: number; minor: number }
) & { mode?: number; uid?: number; gid?: number; xattrs?: Record<string, string | Buffer> };

/** Entries in creation order (parents first); paths relative to the root, "/"-separated. */
export type TreeSpec = Array<[string | Buffer, TreeNodeSpec]>;

/** Run a Python statement with `p` = the raw path bytes (any bytes work, unlike argv strings). */
function py(stmt: string, path: Buffer): void {
  execFileSync("python3", ["-c", `import os, stat, sys; p = bytes.fromhex(sys.argv[1]); ${stmt}`, path.toString("hex")]);
}

const P = (root: string, rel: string | Buffer): Buffer => Buffer.concat([Buffer.from(root + "/"), Buffer.from(rel)]);

export function tempDir(prefix = "pfs-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Create `spec` under `root` (which must exist). Directory modes are applied last. */
export function makeTree(root: string, spec: TreeSpec, rootAttrs: { mode?: number; uid?: number; gid?: number } = {}): void {
  const dirModes: Array<[Buffer, number]> = [];
  for (const [rel, n] of spec) {
    const p = P(root, rel);
    switch (n.type) {
      case "file":
        writeFileSync(p, n.data ?? "");
        break;
      case "dir":
        mkdirSync(p);
        break;
      case "symlink":
        symlinkSync(n.target, p);
        break;
      case "hardlink":
        linkSync(P(root, n.to), p);
        continue;
      case "fifo":
        py("os.mkfifo(p)", p);
        break;
      case "sock":
        py("import socket; socket.socket(socket.AF_UNIX).bind(p)", p);
        break;
      case "chr":
      case "blk":
        py(`os.mknod(p, stat.S_IF${n.type.toUpperCase()} | 0o600, os.makedev(${n.major}, ${n.minor}))`, p);
        break;
    }
    lchownSync(p, n.uid ?? 0, n.gid ?? 0);
    for (const [k, v] of Object.entries(n.xattrs ?? {})) {
      py(`os.setxattr(p, ${JSON.stringify(k)}, bytes.fromhex("${Buffer.from(v).toString("hex")}"), follow_symlinks=False)`, p);
    }
    if (n.type === "dir") dirModes.push([p, n.mode ?? 0o755]);
    else if (n.type !== "symlink") chmodSync(p, n.mode ?? 0o644);
  }
  for (const [p, m] of dirModes.reverse()) chmodSync(p, m);
  lchownSync(root, rootAttrs.uid ?? 0, rootAttrs.gid ?? 0);
  chmodSync(root, rootAttrs.mode ?? 0o755);
}

/** SHA-256 counter stream of spec §6 (big.bin of mixed-noop). */
export function counterStream(n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, len = 0; len < n; i++, len += 32) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(i);
    parts.push(createHash("sha256").update(Buffer.concat([Buffer.from("puzzlefs-fixture"), c])).digest());
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** The `mixed-noop` tree of spec §6. */
export const MIXED_TREE: TreeSpec = [
  ["a.txt", { type: "file", data: "hello\n", uid: 1000, gid: 1000 }],
  ["b", { type: "hardlink", to: "a.txt" }],
  ["dir", { type: "dir", mode: 0o2775 }],
  ["dir/big.bin", { type: "file", data: counterStream(300000), mode: 0o4755 }],
  ["dir/empty", { type: "file", mode: 0o600 }],
  ["dir/fifo", { type: "fifo", mode: 0o644 }],
  ["dir/null", { type: "chr", major: 1, minor: 3, mode: 0o666 }],
  ["link", { type: "symlink", target: "a.txt" }],
  ["z.txt", { type: "file", data: "zzz", xattrs: { "user.k": "v" } }],
];
