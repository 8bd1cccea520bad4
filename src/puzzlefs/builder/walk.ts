/**
 * The builder's directory walk (spec §3.1, §3.2; deltas §3.9).
 *
 * Directories are processed in depth-first pre-order, children sorted by raw
 * name bytes. Processing a directory lists its entries and numbers them in
 * that order: the root is 1, then 2, 3, … (a delta starts at max_inode(base)+1
 * and reuses the base ino of any path the base has). A hard link's second
 * and later names consume a number that is never used, so inos have gaps.
 * Symlinks are never followed. A directory on another filesystem (a mount
 * point) is listed, but directories inside it are not (upstream: walkdir with
 * same_file_system, which yields the mount point but does not descend).
 *
 * Regular files, in the order met, form the data stream (§3.3) that the
 * builder chunks; their FileChunk lists are filled in later (chunkmap.ts).
 *
 * Deliberate differences from upstream, only where upstream writes a broken
 * image or fails: hard links are keyed on (st_dev, st_ino), not st_ino alone;
 * a base path that resolves through a whiteout counts as absent (upstream
 * aborts); a base ino already taken in the new layer by another file is not
 * reused, and a whiteout whose ino is still live is dropped (upstream writes
 * two inodes with one ino, §8).
 */
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import { PfsError } from "../../common/errors.ts";
import type { DirEntry, FileChunk, Inode, InodeAdditional, InodeMode } from "../format/types.ts";
import { readXattrs } from "../native.ts";

/** What a delta build needs from its base image (spec §2.4 path lookup). */
export interface BaseLookup {
  /** max_inode(base): the largest ino of any layer, at least 1. */
  readonly maxInode: bigint;
  /**
   * Resolve raw path components from the root (`[]` is the root). Null when
   * a component is missing, passes through a non-directory, or is a whiteout.
   * `entries` are the directory's raw entries (whiteout names included), or
   * null for a non-directory.
   */
  lookup(components: readonly Uint8Array[]): { ino: bigint; entries: readonly DirEntry[] | null } | null;
}

/** A regular file of the data stream. */
export interface StreamFile {
  path: Buffer;
  /** lstat size at walk time; reading checks the file still has it. */
  size: number;
  ino: bigint;
  /** The inode's chunk list (same array), filled by the chunk mapper. */
  chunks: FileChunk[];
}

export interface WalkCounts {
  dirs: number;
  files: number;
  symlinks: number;
  others: number;
  hardlinks: number;
  whiteouts: number;
  /** Σ sizes of the stream files. */
  bytes: number;
}

export interface WalkResult {
  /** Sorted by ino. */
  inodes: Inode[];
  stream: StreamFile[];
  counts: WalkCounts;
}

const S_IFMT = 0o170000n;
const TYPE = { sock: 0o140000n, lnk: 0o120000n, reg: 0o100000n, blk: 0o060000n, dir: 0o040000n, chr: 0o020000n, fifo: 0o010000n };
const WHITEOUT_PERMISSIONS = 0o644;

/** glibc's major()/minor() of st_rdev (spec §2.3), each truncated to 32 bits. */
export function devMajorMinor(rdev: bigint): { major: bigint; minor: bigint } {
  const m32 = 0xffffffffn;
  return {
    major: (((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)) & m32,
    minor: ((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)) & m32,
  };
}

const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from("/"), name]);
const show = (p: Buffer): string => p.toString();

function lstat(p: Buffer): BigIntStats {
  try {
    return lstatSync(p, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw PfsError.notFound(show(p), "the tree changed during the build, or the path is wrong");
    throw PfsError.io(`lstat ${show(p)}`, e);
  }
}

function additionalOf(p: Buffer, st: BigIntStats): InodeAdditional | null {
  let target: Uint8Array | null = null;
  if ((st.mode & S_IFMT) === TYPE.lnk) {
    try {
      target = new Uint8Array(readlinkSync(p, { encoding: "buffer" }));
    } catch (e) {
      throw PfsError.io(`readlink ${show(p)}`, e);
    }
  }
  const xattrs = readXattrs(p).map((x) => ({ key: new Uint8Array(x.key), val: new Uint8Array(x.val) }));
  return target === null && xattrs.length === 0 ? null : { xattrs, symlinkTarget: target };
}

function modeOf(st: BigIntStats): InodeMode {
  switch (st.mode & S_IFMT) {
    case TYPE.dir:
      return { kind: "dir", entries: [], lookBelow: false };
    case TYPE.reg:
      return { kind: "file", chunks: [] };
    case TYPE.fifo:
      return { kind: "fifo" };
    case TYPE.chr:
      return { kind: "chr", ...devMajorMinor(st.rdev) };
    case TYPE.blk:
      return { kind: "blk", ...devMajorMinor(st.rdev) };
    case TYPE.lnk:
      return { kind: "lnk" };
    case TYPE.sock:
      return { kind: "sock" };
    default:
      return { kind: "unknown" };
  }
}

interface Pending {
  path: Buffer;
  components: Buffer[];
  entries: DirEntry[];
  /** False for a directory on another filesystem: its subdirectories are not processed. */
  descend: boolean;
}

interface Whiteout {
  inode: Inode;
  list: DirEntry[];
  entry: DirEntry;
}

/** Walk `root` (spec §3.1); `base` makes it a delta walk (§3.9). */
export function walk(root: string | Buffer, base?: BaseLookup): WalkResult {
  const rootPath = Buffer.isBuffer(root) ? root : Buffer.from(root);
  const rootSt = lstat(rootPath);
  if ((rootSt.mode & S_IFMT) !== TYPE.dir) throw PfsError.usage(`${show(rootPath)} is not a directory`, "pass the directory to build from");
  const counts: WalkCounts = { dirs: 1, files: 0, symlinks: 0, others: 0, hardlinks: 0, whiteouts: 0, bytes: 0 };
  const inodes: Inode[] = [];
  const stream: StreamFile[] = [];
  const whiteouts: Whiteout[] = [];
  const inodeOf = (ino: bigint, st: BigIntStats, mode: InodeMode, p: Buffer): Inode => ({
    ino,
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    permissions: Number(st.mode & 0o7777n),
    additional: additionalOf(p, st),
  });

  const rootMode: InodeMode = { kind: "dir", entries: [], lookBelow: false };
  inodes.push(inodeOf(1n, rootSt, rootMode, rootPath));
  // (st_dev, st_ino) → pfs ino, and pfs ino → (st_dev, st_ino) for base-ino reuse.
  const seen = new Map<string, bigint>();
  const owner = new Map<bigint, string>([[1n, `${rootSt.dev}:${rootSt.ino}`]]);
  let next = base ? (base.maxInode < 1n ? 2n : base.maxInode + 1n) : 2n;

  const stack: Pending[] = [{ path: rootPath, components: [], entries: rootMode.entries, descend: true }];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let names: Buffer[];
    try {
      names = readdirSync(d.path, { encoding: "buffer" });
    } catch (e) {
      throw PfsError.io(`reading directory ${show(d.path)}`, e);
    }
    names.sort(Buffer.compare);
    if (base) {
      const old = base.lookup(d.components);
      const now = new Set(names.map((n) => n.toString("latin1")));
      for (const e of old?.entries ?? []) {
        if (now.has(Buffer.from(e.name).toString("latin1"))) continue;
        const entry = { name: e.name, ino: e.ino };
        d.entries.push(entry);
        const inode: Inode = { ino: e.ino, mode: { kind: "wht" }, uid: 0, gid: 0, permissions: WHITEOUT_PERMISSIONS, additional: null };
        whiteouts.push({ inode, list: d.entries, entry });
      }
    }
    const children: Pending[] = [];
    for (const name of names) {
      const p = join(d.path, name);
      const st = lstat(p);
      const key = `${st.dev}:${st.ino}`;
      const components = [...d.components, name];
      let cur: bigint | undefined = base?.lookup(components)?.ino;
      if (cur !== undefined && owner.has(cur) && owner.get(cur) !== key && !seen.has(key)) cur = undefined;
      cur ??= next++;
      const linked = seen.get(key);
      d.entries.push({ name: new Uint8Array(name), ino: linked ?? cur });
      if (linked !== undefined) {
        counts.hardlinks++;
        continue;
      }
      seen.set(key, cur);
      owner.set(cur, key);
      const mode = modeOf(st);
      inodes.push(inodeOf(cur, st, mode, p));
      if (mode.kind === "dir") {
        counts.dirs++;
        if (d.descend) children.push({ path: p, components, entries: mode.entries, descend: st.dev === rootSt.dev });
      } else if (mode.kind === "file") {
        counts.files++;
        counts.bytes += Number(st.size);
        stream.push({ path: p, size: Number(st.size), ino: cur, chunks: mode.chunks });
      } else if (mode.kind === "lnk") counts.symlinks++;
      else counts.others++;
    }
    // Pre-order: the first child is processed next.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }

  const live = new Set(inodes.map((n) => n.ino));
  const emitted = new Set<bigint>();
  for (const w of whiteouts) {
    if (live.has(w.inode.ino)) {
      // The base ino is still in use (a surviving hard-link name): drop the stale name.
      w.list.splice(w.list.indexOf(w.entry), 1);
      continue;
    }
    counts.whiteouts++;
    if (emitted.has(w.inode.ino)) continue;
    emitted.add(w.inode.ino);
    inodes.push(w.inode);
  }
  inodes.sort((a, b) => (a.ino < b.ino ? -1 : a.ino > b.ino ? 1 : 0));
  return { inodes, stream, counts };
}
