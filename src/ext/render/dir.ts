/**
 * Directory blocks (directory.rst). A linear directory is one block: '.',
 * '..', the entries in image order, the dirent tail. An htree directory is
 * [dx_root][dx_node × nodes][leaf × leaves]; leaf j holds the entries the
 * plan sorted into it (layout/dirs.ts), so every block renders from the
 * plan's per-directory index and the directory's own node.
 */
import { PfsError } from "../../common/errors.ts";
import { DX_HASH, FT, GEOM, INO } from "../constants.ts";
import { setDirBlockCsum, setDxCsum } from "../csum.ts";
import { lastAtMost } from "../layout/arrays.ts";
import { NODE_LIMIT, leafHash, type Htree } from "../layout/dirs.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { LOST_FOUND } from "../layout/walk.ts";
import { direntLen, writeDirent, writeDirentTail, DIRENT_TAIL } from "../struct/dirent.ts";
import { DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET, writeDxEntries, writeDxNodeHeader, writeDxRootHeader } from "../struct/dx.ts";
import { nodeOf } from "./inode.ts";

const BS = GEOM.BLOCK_SIZE;
const END = BS - DIRENT_TAIL.size;
const DOT = Uint8Array.of(0x2e);
const DOTDOT = Uint8Array.of(0x2e, 0x2e);

interface DirView {
  count: number;
  name(i: number): Uint8Array;
  /** ext inode of entry i. */
  ino(i: number): number;
}

function dirView(plan: ExtPlan, e: number): DirView {
  const entries = nodeOf(plan, e).entries ?? [];
  const extra = e === INO.ROOT && plan.synthLostFound ? 1 : 0;
  return {
    count: entries.length + extra,
    name: (i) => (i < entries.length ? entries[i]!.name : LOST_FOUND),
    ino: (i) => {
      if (i >= entries.length) return INO.LOST_FOUND;
      const c = plan.map.get(entries[i]!.ino);
      if (c === undefined) throw PfsError.internal(`entry ${i} of directory inode ${e} was not planned`);
      return c;
    },
  };
}

/** Entries `order(k)` for k in [from, to) packed from `off`; the last one stretches to the tail. */
function writeEntries(plan: ExtPlan, buf: Uint8Array, off: number, d: DirView, from: number, to: number, order: (k: number) => number): void {
  for (let k = from; k < to; k++) {
    const i = order(k);
    const name = d.name(i);
    const c = d.ino(i);
    const len = k === to - 1 ? END - off : direntLen(name.length);
    writeDirent(buf, off, c, len, name, plan.inodes.ft[c]!);
    off += len;
  }
}

function renderLinear(plan: ExtPlan, e: number, buf: Uint8Array): void {
  const d = dirView(plan, e);
  writeDirent(buf, 0, e, 12, DOT, FT.DIR);
  writeDirent(buf, 12, plan.inodes.parent[e]!, d.count === 0 ? END - 12 : 12, DOTDOT, FT.DIR);
  writeEntries(plan, buf, 24, d, 0, d.count, (k) => k);
  writeDirentTail(buf, BS);
  setDirBlockCsum(plan.opts.csumSeed, e, 0, buf);
}

function renderHtree(plan: ExtPlan, e: number, h: Htree, k: number, buf: Uint8Array): void {
  const seed = plan.opts.csumSeed;
  const firstLeaf = 1 + h.nodes;
  if (k === 0) {
    writeDxRootHeader(buf, e, plan.inodes.parent[e]!, DX_HASH.HALF_MD4, h.levels);
    if (h.levels === 0) writeDxEntries(buf, DX_ROOT_COUNT_OFFSET, h.leaves, (i) => leafHash(h, i), (i) => firstLeaf + i);
    else writeDxEntries(buf, DX_ROOT_COUNT_OFFSET, h.nodes, (i) => leafHash(h, i * NODE_LIMIT), (i) => 1 + i);
    setDxCsum(seed, e, 0, buf, DX_ROOT_COUNT_OFFSET);
    return;
  }
  if (k < firstLeaf) {
    const j0 = (k - 1) * NODE_LIMIT;
    const n = Math.min(NODE_LIMIT, h.leaves - j0);
    writeDxNodeHeader(buf);
    writeDxEntries(buf, DX_NODE_COUNT_OFFSET, n, (i) => leafHash(h, j0 + i), (i) => firstLeaf + j0 + i);
    setDxCsum(seed, e, 0, buf, DX_NODE_COUNT_OFFSET);
    return;
  }
  const j = k - firstLeaf;
  writeEntries(plan, buf, 0, dirView(plan, e), h.leafStart[j]!, h.leafStart[j + 1]!, (s) => h.perm[s]!);
  writeDirentTail(buf, BS);
  setDirBlockCsum(seed, e, 0, buf);
}

/** The directory block at logical data-area block `l`. */
export function renderDirBlock(plan: ExtPlan, l: number): Uint8Array {
  const idx = lastAtMost(plan.dirStart, plan.dirStart.length, l);
  const e = plan.dirIno[idx]!;
  const k = l - plan.dirStart[idx]!;
  const buf = new Uint8Array(BS);
  const h = plan.htrees.get(e);
  if (h) renderHtree(plan, e, h, k, buf);
  else renderLinear(plan, e, buf);
  return buf;
}
