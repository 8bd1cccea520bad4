/**
 * The tree walk: numbers every reachable node as an ext inode (root 2,
 * lost+found 11, then breadth-first from 12), counts links, sizes every
 * inode's data, plans directories and xattrs, and refuses what ext4 cannot
 * hold. Reads metadata only: `tree.node()`, never `tree.readFile()`.
 */
import { PfsError, ErrorCode } from "../../common/errors.ts";
import type { Tree, TreeEntry, TreeNode } from "../../puzzlefs/tree.ts";
import { DX_HASH, FT, GEOM, INO } from "../constants.ts";
import { DirPlanner, checkName } from "./dirs.ts";
import { IF, InoMap, InodeArrays } from "./inodes.ts";
import { XATTR_BLOCK, XATTR_IBODY, XattrBlocks, canonicalXattrs, xattrPlacement } from "./xattrs.ts";
import type { ResolvedOptions } from "./options.ts";

export interface WalkResult {
  inodes: InodeArrays;
  map: InoMap;
  dirs: DirPlanner;
  xattrBlocks: XattrBlocks;
  /** true: /lost+found is synthesized as inode 11 and appended to the root's entries. */
  synthLostFound: boolean;
  /** Set when the tree's own /lost+found is not a directory (e2fsck will say so). */
  warnings: string[];
}

export const LOST_FOUND = new TextEncoder().encode("lost+found");
/** Symlink targets shorter than this live in i_block (ifork.rst). */
export const FAST_SYMLINK_MAX = 59;
export const SYMLINK_MAX = GEOM.BLOCK_SIZE - 1;
const MAX_BLOCKS = 0xffff_ffff;

const FT_OF = { file: FT.REG_FILE, dir: FT.DIR, lnk: FT.SYMLINK, chr: FT.CHRDEV, blk: FT.BLKDEV, fifo: FT.FIFO, sock: FT.SOCK, unknown: FT.REG_FILE } as const;

const unsupported = (msg: string, hint?: string): PfsError => new PfsError(ErrorCode.UNSUPPORTED, msg, { hint });
const isLostFound = (n: Uint8Array): boolean => n.length === LOST_FOUND.length && Buffer.compare(n, LOST_FOUND) === 0;

export function walk(tree: Tree, o: ResolvedOptions): WalkResult {
  const inodes = new InodeArrays(tree.nodeCount + 12);
  const map = new InoMap(tree.nodeCount);
  const dirs = new DirPlanner(DX_HASH.HALF_MD4_UNSIGNED, o.hashSeed);
  const xattrBlocks = new XattrBlocks();
  const warnings: string[] = [];
  const name = new Map<number, string>(); // only for error messages: ext ino → "/path"

  const pathOf = (e: number): string => name.get(e) ?? `inode ${e}`;

  /** Record node facts for a new ext inode `e`. */
  const discover = (e: number, n: TreeNode, pathFn: string | (() => string)): void => {
    const at = (): string => (typeof pathFn === "string" ? pathFn : pathFn());
    inodes.ensure(e);
    if (e > inodes.count) inodes.count = e;
    if (e > 0xffff_fffe) throw unsupported(`${at()}: the tree has more than ${0xffff_fffe - 11} inodes`);
    map.set(n.ino, e);
    inodes.treeIno[e] = n.ino;
    const ft = FT_OF[n.kind];
    if (ft === undefined) throw PfsError.format(at(), `unknown node kind ${String(n.kind)}`);
    inodes.ft[e] = ft;
    if (!(n.uid >= 0 && n.uid <= 0xffff_ffff && n.gid >= 0 && n.gid <= 0xffff_ffff)) throw unsupported(`${at()}: uid/gid ${n.uid}/${n.gid} exceed 32 bits`);
    switch (n.kind) {
      case "file": {
        if (!Number.isSafeInteger(n.size) || n.size < 0) throw PfsError.format(at(), `impossible file size ${n.size}`);
        const blocks = Math.ceil(n.size / GEOM.BLOCK_SIZE);
        if (!(blocks <= MAX_BLOCKS)) throw unsupported(`${at()}: ${n.size} bytes is larger than an ext4 file with 4 KiB blocks can be (16 TiB)`);
        inodes.nblocks[e] = blocks;
        break;
      }
      case "lnk": {
        const t = n.symlinkTarget ?? new Uint8Array();
        if (t.length === 0 || t.length > SYMLINK_MAX) throw unsupported(`${at()}: symlink target of ${t.length} bytes (ext4 holds 1..${SYMLINK_MAX})`);
        if (t.includes(0)) throw unsupported(`${at()}: symlink target contains a NUL byte`);
        if (t.length > FAST_SYMLINK_MAX) {
          inodes.flags[e]! |= IF.SLOW_SYMLINK;
          inodes.nblocks[e] = 1;
        }
        break;
      }
      case "chr":
      case "blk":
        if (n.major > 0xfff || n.minor > 0xfffff || n.major < 0 || n.minor < 0) throw unsupported(`${at()}: device ${n.major}:${n.minor} exceeds 12-bit major / 20-bit minor`);
        break;
      default:
        break;
    }
    if (n.xattrs.length > 0) {
      const recs = canonicalXattrs(n.xattrs, at());
      const place = xattrPlacement(recs, at());
      if (place === XATTR_IBODY) inodes.flags[e]! |= IF.XATTR_IBODY;
      else if (place === XATTR_BLOCK) inodes.xattrBlock[e] = xattrBlocks.assign(e, recs) + 1;
    }
  };

  /** One directory entry of `dir` pointing at ext inode `c`. */
  const link = (dir: number, c: number, path: () => string): boolean => {
    if (inodes.ft[c] === FT.DIR) {
      if (inodes.parent[c] !== 0) throw unsupported(`${path()}: directory is linked more than once (hard-linked directory or cycle)`);
      inodes.parent[c] = dir;
      return true;
    }
    if (++inodes.nlink[c]! > GEOM.LINK_MAX) throw unsupported(`${path()}: more than ${GEOM.LINK_MAX} hard links to one inode`);
    return false;
  };

  const root = tree.node(tree.rootIno);
  if (root.kind !== "dir") throw PfsError.format("root inode", "is not a directory");
  discover(INO.ROOT, root, "/");
  name.set(INO.ROOT, "");
  inodes.parent[INO.ROOT] = INO.ROOT;

  const rootEntries = root.entries ?? [];
  const lpf = rootEntries.find((en) => isLostFound(en.name));
  const synthLostFound = lpf === undefined;
  if (lpf) {
    if (lpf.ino === root.ino) throw unsupported("/lost+found: links back to the root directory");
    const n = tree.node(lpf.ino);
    if (n.kind !== "dir") warnings.push("/lost+found is not a directory in the tree; e2fsck will report it");
    discover(INO.LOST_FOUND, n, "/lost+found");
  } else {
    inodes.ensure(INO.LOST_FOUND);
    inodes.count = INO.LOST_FOUND;
    inodes.ft[INO.LOST_FOUND] = FT.DIR;
    inodes.flags[INO.LOST_FOUND] = IF.SYNTH_LPF;
    inodes.parent[INO.LOST_FOUND] = INO.ROOT;
    inodes.nlink[INO.LOST_FOUND] = 2;
    inodes.nblocks[INO.LOST_FOUND] = 1;
  }
  inodes.count = Math.max(inodes.count, INO.LOST_FOUND);

  let next = INO.LOST_FOUND + 1;
  for (let e: number = INO.ROOT; e <= inodes.count; e = e === INO.ROOT ? INO.LOST_FOUND : e + 1) {
    if (inodes.ft[e] !== FT.DIR || inodes.flags[e]! & IF.SYNTH_LPF) continue;
    const dirPath = pathOf(e);
    const entries: readonly TreeEntry[] = tree.node(inodes.treeIno[e]!).entries ?? [];
    let subdirs = 0;
    for (const en of entries) {
      checkName(en.name, dirPath || "/");
      let c = map.get(en.ino);
      const childPath = (): string => `${dirPath}/${Buffer.from(en.name).toString("latin1")}`;
      if (c === undefined) {
        c = next++;
        discover(c, tree.node(en.ino), childPath);
      }
      if (inodes.ft[c] === FT.DIR && !name.has(c)) name.set(c, childPath());
      if (link(e, c, childPath)) subdirs++;
    }
    const extra = e === INO.ROOT && synthLostFound ? 1 : 0;
    subdirs += extra;
    const n = 2 + subdirs;
    inodes.nlink[e] = n > GEOM.LINK_MAX ? 1 : n; // dir_nlink: 1 means "more than the field holds"
    const nameAt = (i: number): Uint8Array => (i < entries.length ? entries[i]!.name : LOST_FOUND);
    inodes.nblocks[e] = dirs.plan(e, entries.length + extra, nameAt, dirPath || "/");
    if (dirs.htrees.has(e) && inodes.nblocks[e]! > 0) inodes.flags[e]! |= IF.HTREE;
  }
  name.clear();
  xattrBlocks.seal();
  inodes.seal();
  return { inodes, map, dirs, xattrBlocks, synthLostFound, warnings };
}
