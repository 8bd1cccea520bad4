/**
 * `extract`: write a Tree (the merged image) out as a directory (spec §4),
 * safely whatever the image says.
 *
 * Like upstream: breadth-first from the root, entries in image order; a node
 * met again (hard link) is `link()`ed to its first path; the root's metadata
 * goes on DEST itself; no timestamps (the format has none).
 *
 * Unlike upstream (which panics or writes through symlinks):
 *  - names must be single components: empty, ".", "..", "/" or NUL → error,
 *    and a name twice in one directory → error; so every path we build is
 *    DEST plus components we chose;
 *  - the last component is always created exclusively and never followed
 *    (O_EXCL|O_NOFOLLOW, mkdir, symlink, link, mkfifo, mknod all refuse an
 *    existing name), and before a directory's children are created the
 *    directory is lstat'ed and must be the very one we made: no symlink can
 *    redirect a write outside DEST. (A concurrent process rewriting DEST while
 *    we run is out of scope: Node has no openat.)
 *  - ownership with lchown, before chmod, so setuid/setgid survive; xattrs
 *    last (chown clears security.capability);
 *  - sockets are skipped (like GNU tar: a socket is only meaningful while a
 *    process listens on it), "unknown" nodes too; device nodes need root and
 *    are skipped otherwise; every skip is reported;
 *  - a directory inode reached twice (a loop or a hard-linked directory) is an
 *    error instead of endless recursion;
 *  - directory permissions are applied after their contents, deepest first,
 *    so read-only directories can be filled.
 * An existing non-empty DEST is refused unless `force`; with `force`, an
 * existing real directory is reused where the image has a directory and any
 * other existing entry is removed (not followed) before creating ours.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import type { Tree, TreeNode } from "../tree.ts";
import { mknod, writeXattr } from "../native.ts";

export interface ExtractOptions {
  /** Extract into an existing non-empty DEST. */
  force?: boolean;
  /** Restore ownership and create device nodes (default: running as root). */
  asRoot?: boolean;
  /** Called with the file bytes written so far. */
  onProgress?: (bytes: number) => void;
}

export interface ExtractStats {
  dirs: number;
  files: number;
  symlinks: number;
  hardlinks: number;
  fifos: number;
  devices: number;
  bytes: number;
  /** Entries not created, with why (sockets, unknown kinds, devices without root). */
  skipped: Array<{ path: string; reason: string }>;
}

const READ_PIECE = 4 << 20;
const SLASH = Buffer.from("/");

function checkName(name: Uint8Array, dir: Buffer): void {
  const n = Buffer.from(name);
  const bad = n.length === 0 || n.equals(Buffer.from(".")) || n.equals(Buffer.from("..")) || n.includes(0x2f) || n.includes(0);
  if (bad) {
    throw PfsError.format(`directory ${dir.toString()}`, `entry name ${JSON.stringify(n.toString("latin1"))} is not a single path component`);
  }
}

const io = (what: string, p: Buffer) => (e: unknown) => {
  throw PfsError.io(`${what} ${p.toString()}`, e);
};
function attempt<T>(what: string, p: Buffer, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PfsError) throw e;
    return io(what, p)(e);
  }
}

function lstatOrNull(p: Buffer): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw PfsError.io(`lstat ${p.toString()}`, e);
  }
}

/** Prepare DEST: create it, or check it is empty (unless force); returns its real path. */
function prepareDest(dest: string | Buffer, force: boolean): Buffer {
  const d = Buffer.isBuffer(dest) ? dest : Buffer.from(dest);
  const st = lstatOrNull(d);
  if (st === null) attempt("creating", d, () => mkdirSync(d, { recursive: true, mode: 0o700 }));
  const real = attempt("resolving", d, () => realpathSync(d, { encoding: "buffer" }));
  if (!lstatSync(real).isDirectory()) throw PfsError.usage(`${d.toString()} exists and is not a directory`, "choose another destination");
  if (!force && readdirSync(real).length > 0) {
    throw new PfsError(ErrorCode.EXISTS, `${d.toString()} exists and is not empty`, {
      hint: "extract into an empty or new directory, or pass --force to extract over it",
    });
  }
  return real;
}

interface Dir {
  ino: number;
  path: Buffer;
  /** dev/ino of the directory we made (or reuse), checked before use. */
  dev: number;
  hostIno: number;
}

export async function extract(tree: Tree, dest: string | Buffer, opts: ExtractOptions = {}): Promise<ExtractStats> {
  const force = opts.force ?? false;
  const asRoot = opts.asRoot ?? process.geteuid?.() === 0;
  const stats: ExtractStats = { dirs: 1, files: 0, symlinks: 0, hardlinks: 0, fifos: 0, devices: 0, bytes: 0, skipped: [] };
  const root = prepareDest(dest, force);
  const rootSt = lstatSync(root);
  const first = new Map<number, Buffer>([[tree.rootIno, root]]);
  const queue: Dir[] = [{ ino: tree.rootIno, path: root, dev: rootSt.dev, hostIno: rootSt.ino }];
  const finishDirs: Array<{ node: TreeNode; path: Buffer }> = [{ node: tree.node(tree.rootIno), path: root }];

  for (let qi = 0; qi < queue.length; qi++) {
    const d = queue[qi]!;
    const node = tree.node(d.ino);
    // The directory must still be the one we made: never write through a swapped-in symlink.
    const now = lstatOrNull(d.path);
    if (!now || !now.isDirectory() || now.dev !== d.dev || now.ino !== d.hostIno) {
      throw PfsError.io(`${d.path.toString()}`, new Error("directory was replaced during extraction"));
    }
    const names = new Set<string>();
    for (const e of node.entries ?? []) {
      checkName(e.name, d.path);
      const key = Buffer.from(e.name).toString("latin1");
      if (names.has(key)) throw PfsError.format(`directory ${d.path.toString()}`, `entry ${JSON.stringify(key)} appears twice`);
      names.add(key);
      const path = Buffer.concat([d.path, SLASH, e.name]);
      const child = tree.node(e.ino);
      const prev = first.get(e.ino);
      if (prev) {
        if (child.kind === "dir") throw PfsError.format(`image`, `directory inode ${e.ino} is reached twice (at ${path.toString()})`);
        clearExisting(path, false, force);
        attempt("linking", path, () => linkSync(prev, path));
        stats.hardlinks++;
        continue;
      }
      const made = await create(tree, child, path, force, asRoot, stats, opts.onProgress);
      if (!made) continue;
      first.set(e.ino, path);
      if (child.kind === "dir") {
        const st = lstatSync(path);
        queue.push({ ino: e.ino, path, dev: st.dev, hostIno: st.ino });
        finishDirs.push({ node: child, path });
      }
    }
  }
  // Directory metadata last, deepest first (BFS order reversed).
  for (let i = finishDirs.length - 1; i >= 0; i--) applyMeta(finishDirs[i]!.node, finishDirs[i]!.path, null, asRoot);
  return stats;
}

/** With force, make room for a new entry at `path`: keep a real dir when we want one, remove anything else. */
function clearExisting(path: Buffer, wantDir: boolean, force: boolean): "reuse" | "free" {
  const st = lstatOrNull(path);
  if (st === null) return "free";
  if (!force) throw new PfsError(ErrorCode.EXISTS, `${path.toString()} already exists`, { hint: "pass --force to replace it" });
  if (wantDir && st.isDirectory()) return "reuse";
  attempt("removing", path, () => rmSync(path, { recursive: true, force: true }));
  return "free";
}

async function create(
  tree: Tree,
  n: TreeNode,
  path: Buffer,
  force: boolean,
  asRoot: boolean,
  stats: ExtractStats,
  onProgress: ((bytes: number) => void) | undefined,
): Promise<boolean> {
  const skip = (reason: string) => {
    stats.skipped.push({ path: path.toString(), reason });
    log.pfs("extract: skipping %s: %s", path.toString(), reason);
    return false;
  };
  if (n.kind === "sock") return skip("socket (not restorable; like tar, sockets are skipped)");
  if (n.kind === "unknown") return skip("inode of unknown type");
  if ((n.kind === "chr" || n.kind === "blk") && !asRoot) return skip("device node (needs root)");
  const reuse = clearExisting(path, n.kind === "dir", force) === "reuse";
  switch (n.kind) {
    case "dir":
      if (!reuse) attempt("mkdir", path, () => mkdirSync(path, 0o700));
      stats.dirs++;
      return true; // metadata when its contents are done
    case "file":
      await writeFile(tree, n, path, asRoot, stats, onProgress);
      stats.files++;
      return true;
    case "lnk":
      attempt("symlink", path, () => symlinkSync(Buffer.from(n.symlinkTarget ?? new Uint8Array()), path));
      stats.symlinks++;
      break;
    case "fifo":
      // Node has no mkfifo: mknod(2) with S_IFIFO (native helper).
      mknod(null, path, constants.S_IFIFO, 0o600, 0, 0);
      stats.fifos++;
      break;
    case "chr":
    case "blk":
      mknod(null, path, n.kind === "chr" ? constants.S_IFCHR : constants.S_IFBLK, 0o600, n.major, n.minor);
      stats.devices++;
      break;
  }
  applyMeta(n, path, null, asRoot);
  return true;
}

async function writeFile(
  tree: Tree,
  n: TreeNode,
  path: Buffer,
  asRoot: boolean,
  stats: ExtractStats,
  onProgress: ((bytes: number) => void) | undefined,
): Promise<void> {
  const fd = attempt("creating", path, () =>
    openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600),
  );
  try {
    for (let off = 0; off < n.size; ) {
      const piece = await tree.readFile(n.ino, off, Math.min(READ_PIECE, n.size - off));
      if (piece.length === 0) throw PfsError.format(`inode ${n.ino}`, `file data ends at ${off} of ${n.size} bytes`);
      for (let w = 0; w < piece.length; ) w += attempt("writing", path, () => writeSync(fd, piece, w, piece.length - w));
      off += piece.length;
      stats.bytes += piece.length;
      onProgress?.(stats.bytes);
    }
    applyMeta(n, path, fd, asRoot);
  } finally {
    closeSync(fd);
  }
}

/** Ownership, then permissions, then xattrs (spec §4, reordered: see the header). */
function applyMeta(n: TreeNode, path: Buffer, fd: number | null, asRoot: boolean): void {
  if (asRoot) attempt("chown", path, () => (fd === null ? lchownSync(path, n.uid, n.gid) : fchownSync(fd, n.uid, n.gid)));
  // Linux symlinks have no mode of their own (chmod would follow them).
  if (n.kind !== "lnk") attempt("chmod", path, () => (fd === null ? chmodSync(path, n.permissions) : fchmodSync(fd, n.permissions)));
  for (const x of n.xattrs) writeXattr(path, x.key, x.value);
}
