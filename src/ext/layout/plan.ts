/**
 * planExtImage: Tree + options → an immutable plan (STYLE.md §6). Pure
 * arithmetic over metadata: walk the tree (walk.ts), place data in the
 * logical data area by section (xattr blocks, directories, slow symlinks,
 * file contents, extent tree blocks), fix the geometry (geometry.ts), then
 * lay the region map over every physical block.
 */
import { PfsError, ErrorCode } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import type { Tree } from "../../puzzlefs/tree.ts";
import { FT, GEOM } from "../constants.ts";
import type { Htree } from "./dirs.ts";
import { extentCount, treeShape } from "./extents.ts";
import { planGeometry, type DataMap, type Geometry } from "./geometry.ts";
import { IF, type InoMap, type InodeArrays } from "./inodes.ts";
import { resolveOptions, type ExtOptions, type ResolvedOptions } from "./options.ts";
import { RK, RegionTable } from "./regions.ts";
import { walk } from "./walk.ts";
import type { XattrBlocks } from "./xattrs.ts";

/** Logical data-area block where each section starts (ends at the next one). */
export interface Sections {
  xattr: number;
  dirs: number;
  symlinks: number;
  files: number;
  trees: number;
  end: number;
}

export interface ExtentTrees {
  /** Owner ext inode of each tree, in data-area order. */
  ino: Uint32Array;
  /** Logical start of each tree (sorted). */
  start: Float64Array;
  /** ext inode → index into ino/start. */
  byIno: Map<number, number>;
}

export interface ExtPlan {
  readonly tree: Tree;
  readonly opts: ResolvedOptions;
  readonly geo: Geometry;
  readonly inodes: InodeArrays;
  readonly map: InoMap;
  readonly htrees: ReadonlyMap<number, Htree>;
  readonly xattrBlocks: XattrBlocks;
  readonly synthLostFound: boolean;
  readonly sections: Sections;
  /** Directories in data-area order, with their logical starts. */
  readonly dirIno: Uint32Array;
  readonly dirStart: Float64Array;
  /** Slow symlinks in data-area order (one block each). */
  readonly symIno: Uint32Array;
  readonly trees: ExtentTrees;
  readonly regions: RegionTable;
  /** Directories per group (bg_used_dirs_count). */
  readonly usedDirs: Uint32Array;
  readonly warnings: readonly string[];
  /** Device size in bytes. */
  readonly size: number;
}

export function planExtImage(tree: Tree, options: ExtOptions = {}): ExtPlan {
  const t0 = performance.now();
  const opts = resolveOptions(options);
  const w = walk(tree, opts);
  const { inodes } = w;
  const n = inodes.count;

  // Place data in the logical data area, section by section, in inode order.
  const sections: Sections = { xattr: 0, dirs: 0, symlinks: 0, files: 0, trees: 0, end: 0 };
  let l = w.xattrBlocks.count;
  sections.dirs = l;
  const dirIno: number[] = [];
  const dirStart: number[] = [];
  for (let e = 1; e <= n; e++) {
    if (inodes.ft[e] !== FT.DIR) continue;
    inodes.dataL[e] = l;
    dirIno.push(e);
    dirStart.push(l);
    l += inodes.nblocks[e]!;
  }
  sections.symlinks = l;
  const symIno: number[] = [];
  for (let e = 1; e <= n; e++) {
    if (!(inodes.flags[e]! & IF.SLOW_SYMLINK)) continue;
    inodes.dataL[e] = l++;
    symIno.push(e);
  }
  sections.files = l;
  let fileCount = 0;
  for (let e = 1; e <= n; e++) {
    if (inodes.ft[e] !== FT.REG_FILE || inodes.nblocks[e] === 0) continue;
    fileCount++;
    inodes.dataL[e] = l;
    l += inodes.nblocks[e]!;
  }
  sections.trees = l;

  const owners = extentOwners(inodes);
  const treeBlocks = (m: DataMap): number => {
    let b = 0;
    for (const e of owners) b += treeShape(extentCount(m, inodes.dataL[e]!, inodes.nblocks[e]!))?.blocks ?? 0;
    return b;
  };
  const geo = planGeometry(n, l, treeBlocks);
  if (geo.inodeCount > 0xffff_ffff) throw new PfsError(ErrorCode.UNSUPPORTED, `${n} inodes: more than ext4 can number`);
  sections.end = geo.dataBlocks;

  const trees: ExtentTrees = { ino: new Uint32Array(0), start: new Float64Array(0), byIno: new Map() };
  const tIno: number[] = [];
  const tStart: number[] = [];
  for (const e of owners) {
    const s = treeShape(extentCount(geo.data, inodes.dataL[e]!, inodes.nblocks[e]!));
    if (!s) continue;
    trees.byIno.set(e, tIno.length);
    tIno.push(e);
    tStart.push(l);
    l += s.blocks;
  }
  if (l !== sections.end) throw PfsError.internal(`extent tree blocks: planned ${sections.end - sections.trees}, placed ${l - sections.trees}`);
  trees.ino = Uint32Array.from(tIno);
  trees.start = Float64Array.from(tStart);

  const usedDirs = new Uint32Array(geo.groups);
  for (const e of dirIno) usedDirs[Math.floor((e - 1) / geo.inodesPerGroup)]!++;

  const regions = buildRegions(geo, inodes, sections, trees, fileCount);
  const plan: ExtPlan = {
    tree,
    opts,
    geo,
    inodes,
    map: w.map,
    htrees: w.dirs.htrees,
    xattrBlocks: w.xattrBlocks,
    synthLostFound: w.synthLostFound,
    sections,
    dirIno: Uint32Array.from(dirIno),
    dirStart: Float64Array.from(dirStart),
    symIno: Uint32Array.from(symIno),
    trees,
    regions,
    usedDirs,
    warnings: w.warnings,
    size: geo.blocks * GEOM.BLOCK_SIZE,
  };
  log.ext("planned %d inodes, %d blocks, %d groups, %d regions in %d ms", n, geo.blocks, geo.groups, regions.count, Math.round(performance.now() - t0));
  return Object.freeze(plan);
}

/** Inodes whose data is mapped by extents: directories and non-empty files. */
function extentOwners(inodes: InodeArrays): Uint32Array {
  const out: number[] = [];
  for (let e = 1; e <= inodes.count; e++) {
    const ft = inodes.ft[e];
    if ((ft === FT.DIR || ft === FT.REG_FILE) && inodes.nblocks[e]! > 0) out.push(e);
  }
  return Uint32Array.from(out);
}

/** Every physical block, in order, to the region that renders it. */
function buildRegions(geo: Geometry, inodes: InodeArrays, s: Sections, trees: ExtentTrees, files: number): RegionTable {
  const rt = new RegionTable(files + 4 * geo.groups + 2 * geo.backupGroups.length + 16);
  const holeLen = 1 + geo.gdtBlocks;
  let bi = 0;
  let fi = 0;
  /** Cover [rt.end, p) with backup copies and free ranges; anything else is a planning bug. */
  const fillTo = (p: number): void => {
    while (rt.end < p) {
      const at = rt.end;
      while (bi < geo.backupGroups.length && geo.backupGroups[bi]! * GEOM.BLOCKS_PER_GROUP < at) bi++;
      while (fi < geo.free.length && geo.free[fi]![0] < at) fi++;
      if (bi < geo.backupGroups.length && geo.backupGroups[bi]! * GEOM.BLOCKS_PER_GROUP === at) rt.push(at, holeLen, RK.BACKUP, geo.backupGroups[bi]!);
      else if (fi < geo.free.length && geo.free[fi]![0] === at) rt.push(at, geo.free[fi]![1], RK.FREE);
      else throw PfsError.internal(`block ${at} is claimed by nothing`);
    }
    if (rt.end !== p) throw PfsError.internal(`block ${p} lies inside a backup or free range`);
  };
  rt.push(0, 1 + geo.gdtBlocks, RK.PRIMARY);
  for (let g = 0; g < geo.groups; g++) {
    fillTo(geo.bbLoc[g]!);
    rt.push(geo.bbLoc[g]!, 1, RK.BLOCK_BITMAP, g);
  }
  for (let g = 0; g < geo.groups; g++) {
    fillTo(geo.ibLoc[g]!);
    rt.push(geo.ibLoc[g]!, 1, RK.INODE_BITMAP, g);
  }
  for (let g = 0; g < geo.groups; g++) {
    fillTo(geo.itLoc[g]!);
    const used = Math.min(geo.inodesPerGroup, Math.max(0, inodes.count - g * geo.inodesPerGroup));
    const ub = Math.ceil(used / GEOM.INODES_PER_BLOCK);
    rt.push(geo.itLoc[g]!, ub, RK.INODE_TABLE, g, 0);
    rt.push(geo.itLoc[g]! + ub, geo.itb - ub, RK.INODE_TABLE_UNUSED);
  }
  const section = (from: number, to: number, kind: (typeof RK)[keyof typeof RK]): void =>
    geo.data.pieces(from, to - from, (p, len, off) => {
      fillTo(p);
      rt.push(p, len, kind, from + off);
    });
  section(s.xattr, s.dirs, RK.XATTR);
  section(s.dirs, s.symlinks, RK.DIR);
  section(s.symlinks, s.files, RK.SYMLINK);
  for (let e = 1; e <= inodes.count; e++) {
    if (inodes.ft[e] !== FT.REG_FILE || inodes.nblocks[e] === 0) continue;
    geo.data.pieces(inodes.dataL[e]!, inodes.nblocks[e]!, (p, len, off) => {
      fillTo(p);
      rt.push(p, len, RK.FILE, e, off);
    });
  }
  section(s.trees, s.end, RK.EXTENT_TREE);
  fillTo(geo.blocks);
  rt.seal();
  if (trees.ino.length !== trees.byIno.size) throw PfsError.internal("extent tree index mismatch");
  return rt;
}
