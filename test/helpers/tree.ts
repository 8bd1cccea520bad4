/**
 * Test helper: create a directory tree with exact types, modes, owners,
 * xattrs and device numbers (needs root for chown/mknod; tests run as root).
 * Creation is done by Python's os module, not the code under test.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
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

/** The system Python (pyenv's shim costs ~0.1 s per start). */
export const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

/**
 * One Python process creates the whole tree, in spec order: raw-byte names
 * work (argv strings could not carry them), and one start-up instead of one
 * per special node keeps big trees fast. Per entry: create, chown, xattrs,
 * chmod (chown clears security.capability and setuid bits, so it goes
 * first); directory modes last, deepest first, so read-only dirs can be filled.
 */
const MAKE_TREE = String.raw`
import base64, json, os, socket, stat, sys
job = json.load(sys.stdin)
root = job['root'].encode()
dir_modes = []
for e in job['entries']:
    p = root + b'/' + bytes.fromhex(e['path'])
    t = e['type']
    if t == 'file':
        with open(p, 'wb') as f: f.write(base64.b64decode(e.get('data', '')))
    elif t == 'dir': os.mkdir(p)
    elif t == 'symlink': os.symlink(bytes.fromhex(e['target']), p)
    elif t == 'hardlink':
        os.link(root + b'/' + bytes.fromhex(e['to']), p, follow_symlinks=False)
        continue
    elif t == 'fifo': os.mkfifo(p)
    elif t == 'sock': socket.socket(socket.AF_UNIX).bind(p)
    elif t in ('chr', 'blk'):
        os.mknod(p, (stat.S_IFCHR if t == 'chr' else stat.S_IFBLK) | 0o600, os.makedev(e['major'], e['minor']))
    os.lchown(p, e.get('uid', 0), e.get('gid', 0))
    for k, v in e.get('xattrs', []):
        os.setxattr(p, bytes.fromhex(k), bytes.fromhex(v), follow_symlinks=False)
    if t == 'dir': dir_modes.append((p, e.get('mode', 0o755)))
    elif t != 'symlink': os.chmod(p, e.get('mode', 0o644))
for p, m in reversed(dir_modes): os.chmod(p, m)
r = job['rootAttrs']
os.lchown(root, r.get('uid', 0), r.get('gid', 0))
os.chmod(root, r.get('mode', 0o755))
`;

const hex = (v: string | Buffer): string => Buffer.from(v).toString("hex");

export function tempDir(prefix = "pfs-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Create \`spec\` under \`root\` (which must exist). Directory modes are applied last. */
export function makeTree(root: string, spec: TreeSpec, rootAttrs: { mode?: number; uid?: number; gid?: number } = {}): void {
  const entries = spec.map(([rel, n]) => {
    const { xattrs, ...rest } = n;
    const e: Record<string, unknown> = { ...rest, path: hex(rel) };
    if (n.type === "file") e.data = Buffer.from(n.data ?? "").toString("base64");
    if (n.type === "symlink") e.target = hex(n.target);
    if (n.type === "hardlink") e.to = hex(n.to);
    if (xattrs) e.xattrs = Object.entries(xattrs).map(([k, v]) => [hex(k), hex(v)]);
    return e;
  });
  execFileSync(PYTHON, ["-c", MAKE_TREE], { input: JSON.stringify({ root, entries, rootAttrs }), maxBuffer: 1 << 20 });
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
