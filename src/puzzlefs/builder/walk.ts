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
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { PfsError } from "../../common/errors.ts";
import type { DirEntry, FileChunk, Inode, InodeAdditional, InodeMode } from "../format/types.ts";
import { nativeScandir, readXattrs, type ScannedDir } from "../native.ts";

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

const S_IFMT = 0o170000;
const TYPE = { sock: 0o140000, lnk: 0o120000, reg: 0o100000, blk: 0o060000, dir: 0o040000, chr: 0o020000, fifo: 0o010000 };
const WHITEOUT_PERMISSIONS = 0o644;

/** glibc's major()/minor() of st_rdev (spec §2.3), each truncated to 32 bits. */
export function devMajorMinor(rdev: bigint): { major: bigint; minor: bigint } {
  const m32 = 0xffffffffn;
  return {
    major: (((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)) & m32,
    minor: ((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)) & m32,
  };
}

/** What the walk needs of an lstat (from Node's, or from the native scan). */
interface EntryStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  major: bigint;
  minor: bigint;
  /** "st_dev:st_ino" (hard links, base-ino ownership). */
  key: string;
  /** st_dev, decimal (mount points). */
  dev: string;
  /** False when the scan saw no xattrs: readXattrs is not needed. */
  xattrs: boolean;
}

const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from("/"), name]);
const show = (p: Buffer): string => p.toString();

function lstatError(p: Buffer, e: unknown): PfsError {
  if ((e as NodeJS.ErrnoException).code === "ENOENT") return PfsError.notFound(show(p), "the tree changed during the build, or the path is wrong");
  return PfsError.io(`lstat ${show(p)}`, e);
}

function lstat(p: Buffer): EntryStat {
  let st;
  try {
    st = lstatSync(p, { bigint: true });
  } catch (e) {
    throw lstatError(p, e);
  }
  const dev = `${st.dev}`;
  const t = Number(st.mode) & S_IFMT;
  const { major, minor } = t === TYPE.chr || t === TYPE.blk ? devMajorMinor(st.rdev) : { major: 0n, minor: 0n };
  return { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: Number(st.size), major, minor, key: `${dev}:${st.ino}`, dev, xattrs: true };
}

/** errno number → name, for the native scan's per-entry failures. */
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** Entry i of a native scan as an EntryStat, or the lstat error Node would have given. */
function scanned(r: ScannedDir, i: number, p: Buffer): EntryStat {
  const f = r.num;
  const mode = f[6 * i]!;
  if (mode < 0) {
    const code = ERRNO_NAMES.get(-mode) ?? `E${-mode}`;
    throw lstatError(p, Object.assign(new Error(`${code}: lstat failed`), { code, errno: mode, syscall: "lstat" }));
  }
  const key = r.keys[i]!;
  return {
    mode,
    uid: f[6 * i + 1]!,
    gid: f[6 * i + 2]!,
    size: f[6 * i + 3]!,
    major: BigInt(f[6 * i + 4]!),
    minor: BigInt(f[6 * i + 5]!),
    key,
    dev: key.slice(0, key.indexOf(":")),
    xattrs: r.xattrs[i] !== 0,
  };
}

function additionalOf(p: Buffer, st: EntryStat): InodeAdditional | null {
  let target: Uint8Array | null = null;
  if ((st.mode & S_IFMT) === TYPE.lnk) {
    try {
      target = new Uint8Array(readlinkSync(p, { encoding: "buffer" }));
    } catch (e) {
      throw PfsError.io(`readlink ${show(p)}`, e);
    }
  }
  const xattrs = st.xattrs ? readXattrs(p).map((x) => ({ key: new Uint8Array(x.key), val: new Uint8Array(x.val) })) : [];
  return target === null && xattrs.length === 0 ? null : { xattrs, symlinkTarget: target };
}

function modeOf(st: EntryStat): InodeMode {
  switch (st.mode & S_IFMT) {
    case TYPE.dir:
      return { kind: "dir", entries: [], lookBelow: false };
    case TYPE.reg:
      return { kind: "file", chunks: [] };
    case TYPE.fifo:
      return { kind: "fifo" };
    case TYPE.chr:
      return { kind: "chr", major: st.major, minor: st.minor };
    case TYPE.blk:
      return { kind: "blk", major: st.major, minor: st.minor };
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

/**
 * The walk, one directory at a time (step()), so the builder can read and
 * chunk the files already found while the rest of the tree is still being
 * walked. `stream` and `counts` grow as it goes; finish() completes it.
 */
export class Walker {
  readonly inodes: Inode[] = [];
  /** The data stream so far (appended to by step()). */
  readonly stream: StreamFile[] = [];
  readonly counts: WalkCounts = { dirs: 1, files: 0, symlinks: 0, others: 0, hardlinks: 0, whiteouts: 0, bytes: 0 };
  private readonly whiteouts: Whiteout[] = [];
  private readonly rootDev: string;
  private readonly scandir: ((dir: Buffer) => ScannedDir) | null;
  // (st_dev, st_ino) → pfs ino, and pfs ino → (st_dev, st_ino) for base-ino reuse.
  private readonly seen = new Map<string, bigint>();
  private readonly owner: Map<bigint, string>;
  private next: bigint;
  private readonly stack: Pending[];

  /** `native: false` lists directories with Node's fs (the reference the C scan is tested against). */
  constructor(
    root: string | Buffer,
    private readonly base?: BaseLookup,
    opts: { native?: boolean } = {},
  ) {
    const rootPath = Buffer.isBuffer(root) ? root : Buffer.from(root);
    const rootSt = lstat(rootPath);
    if ((rootSt.mode & S_IFMT) !== TYPE.dir) throw PfsError.usage(`${show(rootPath)} is not a directory`, "pass the directory to build from");
    this.rootDev = rootSt.dev;
    this.scandir = opts.native === false ? null : nativeScandir();
    const rootMode: InodeMode = { kind: "dir", entries: [], lookBelow: false };
    this.inodes.push(inodeOf(1n, rootSt, rootMode, rootPath));
    this.owner = new Map<bigint, string>([[1n, rootSt.key]]);
    this.next = base ? (base.maxInode < 1n ? 2n : base.maxInode + 1n) : 2n;
    this.stack = [{ path: rootPath, components: [], entries: rootMode.entries, descend: true }];
  }

  /** Process the next directory; false once every directory has been processed. */
  step(): boolean {
    const d = this.stack.pop();
    if (!d) return false;
    const { base, counts, seen, owner } = this;
    let names: Buffer[];
    let scan: ScannedDir | null = null;
    try {
      if (this.scandir) names = (scan = this.scandir(d.path)).names;
      else names = readdirSync(d.path, { encoding: "buffer" }).sort(Buffer.compare);
    } catch (e) {
      throw PfsError.io(`reading directory ${show(d.path)}`, e);
    }
    if (base) {
      const old = base.lookup(d.components);
      const now = new Set(names.map((n) => n.toString("latin1")));
      for (const e of old?.entries ?? []) {
        if (now.has(Buffer.from(e.name).toString("latin1"))) continue;
        const entry = { name: e.name, ino: e.ino };
        d.entries.push(entry);
        const inode: Inode = { ino: e.ino, mode: { kind: "wht" }, uid: 0, gid: 0, permissions: WHITEOUT_PERMISSIONS, additional: null };
        this.whiteouts.push({ inode, list: d.entries, entry });
      }
    }
    const children: Pending[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const p = join(d.path, name);
      const st = scan ? scanned(scan, i, p) : lstat(p);
      const key = st.key;
      const components = [...d.components, name];
      let cur: bigint | undefined = base?.lookup(components)?.ino;
      if (cur !== undefined && owner.has(cur) && owner.get(cur) !== key && !seen.has(key)) cur = undefined;
      cur ??= this.next++;
      const linked = seen.get(key);
      d.entries.push({ name: new Uint8Array(name), ino: linked ?? cur });
      if (linked !== undefined) {
        counts.hardlinks++;
        continue;
      }
      seen.set(key, cur);
      owner.set(cur, key);
      const mode = modeOf(st);
      this.inodes.push(inodeOf(cur, st, mode, p));
      if (mode.kind === "dir") {
        counts.dirs++;
        if (d.descend) children.push({ path: p, components, entries: mode.entries, descend: st.dev === this.rootDev });
      } else if (mode.kind === "file") {
        counts.files++;
        counts.bytes += st.size;
        this.stream.push({ path: p, size: st.size, ino: cur, chunks: mode.chunks });
      } else if (mode.kind === "lnk") counts.symlinks++;
      else counts.others++;
    }
    // Pre-order: the first child is processed next.
    for (let i = children.length - 1; i >= 0; i--) this.stack.push(children[i]!);
    return true;
  }

  /** Walk what is left, then resolve the whiteouts; the inodes come sorted by ino. */
  finish(): WalkResult {
    while (this.step());
    const { inodes, counts } = this;
    const live = new Set(inodes.map((n) => n.ino));
    const emitted = new Set<bigint>();
    for (const w of this.whiteouts.splice(0)) {
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
    return { inodes, stream: this.stream, counts };
  }
}

function inodeOf(ino: bigint, st: EntryStat, mode: InodeMode, p: Buffer): Inode {
  return { ino, mode, uid: st.uid, gid: st.gid, permissions: st.mode & 0o7777, additional: additionalOf(p, st) };
}

/** Walk `root` (spec §3.1); `base` makes it a delta walk (§3.9). */
export function walk(root: string | Buffer, base?: BaseLookup, opts: { native?: boolean } = {}): WalkResult {
  return new Walker(root, base, opts).finish();
}
