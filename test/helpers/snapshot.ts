/**
 * Test oracle: describe a directory tree with Python's os module (not our
 * code) so two trees can be compared for equality of everything PuzzleFS
 * keeps: type, permissions (incl. setuid/setgid/sticky), uid/gid, content
 * (sha256 and size), symlink target, device numbers, xattrs (as a set; their
 * order is filesystem-dependent), and hard-link groups. Names are raw bytes
 * (hex in the keys). Timestamps are not kept by the format and not compared.
 */
import { execFileSync } from "node:child_process";
import { PYTHON } from "./tree.ts";

export interface EntrySnapshot {
  type: "dir" | "file" | "lnk" | "chr" | "blk" | "fifo" | "sock";
  perm: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  major?: number;
  minor?: number;
  /** key hex → value hex, sorted by key. */
  xattrs: Record<string, string>;
  /** The smallest path (hex) of this entry's hard-link group, for files with more than one name. */
  linkGroup?: string;
}

/** relative path (raw bytes, hex; "" is the root) → entry. */
export type TreeSnapshot = Record<string, EntrySnapshot>;

const SCRIPT = String.raw`
import hashlib, json, os, stat, sys
root = bytes.fromhex(sys.argv[1])
skip = set(sys.argv[2].split(',')) if sys.argv[2] else set()
out, inos = {}, {}
def kind(m):
    for k, t in (('dir', stat.S_ISDIR), ('file', stat.S_ISREG), ('lnk', stat.S_ISLNK), ('chr', stat.S_ISCHR), ('blk', stat.S_ISBLK), ('fifo', stat.S_ISFIFO), ('sock', stat.S_ISSOCK)):
        if t(m): return k
    return 'unknown'
def visit(rel):
    p = root + rel if rel else root
    st = os.lstat(p)
    k = kind(st.st_mode)
    if k in skip: return
    e = {'type': k, 'perm': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid, 'xattrs': {}}
    for x in sorted(os.listxattr(p, follow_symlinks=False)):
        e['xattrs'][x.encode('utf-8', 'surrogateescape').hex()] = os.getxattr(p, x, follow_symlinks=False).hex()
    if k == 'file':
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
        e['size'] = st.st_size; e['sha256'] = h.hexdigest()
    if k == 'lnk': e['target'] = os.readlink(p).hex()
    if k in ('chr', 'blk'): e['major'] = os.major(st.st_rdev); e['minor'] = os.minor(st.st_rdev)
    if k != 'dir' and st.st_nlink > 1: inos.setdefault((st.st_dev, st.st_ino), []).append(rel.hex())
    out[rel.hex()] = e
    if k == 'dir':
        for n in sorted(os.listdir(p)):
            visit(rel + b'/' + n if rel else b'/' + n)
visit(b'')
for group in inos.values():
    if len(group) > 1:
        for r in group: out[r]['linkGroup'] = min(group)
print(json.dumps(out))
`;

/** Snapshot `root`; entries of the `skip` types (e.g. "sock") are left out. */
export function snapshotTree(root: string | Buffer, skip: Array<EntrySnapshot["type"]> = []): TreeSnapshot {
  const json = execFileSync(PYTHON, ["-c", SCRIPT, Buffer.from(root).toString("hex"), skip.join(",")], { maxBuffer: 1 << 28 });
  return JSON.parse(json.toString()) as TreeSnapshot;
}

/** Human-readable path of a snapshot key, for failure messages. */
export function showKey(k: string): string {
  return Buffer.from(k, "hex").toString("latin1");
}
