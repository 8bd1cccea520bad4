/**
 * Directory planning (directory.rst): a directory whose entries fit in one
 * block is a linear block ('.', '..', entries, dirent tail). Anything
 * larger gets an htree: the dx_root in block 0, for more than 507 leaves a
 * level of dx_node blocks (≤ 510 leaves each), then leaf blocks holding the
 * entries sorted by hash. We keep, per htree directory, the hash order
 * (`perm`), the sorted hashes and where each leaf starts, so any one block
 * renders without looking at the rest of the directory.
 */
import { PfsError, ErrorCode } from "../../common/errors.ts";
import { GEOM } from "../constants.ts";
import { direntLen, DIRENT_TAIL } from "../struct/dirent.ts";
import { DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET, dxLimit } from "../struct/dx.ts";
import { dirHashOnly } from "../hash.ts";

const BS = GEOM.BLOCK_SIZE;
/** Bytes for entries in a linear single-block directory: minus tail, '.' and '..'. */
export const LINEAR_CAPACITY = BS - DIRENT_TAIL.size - 2 * direntLen(2);
/** Bytes for entries in an htree leaf: minus the tail. */
export const LEAF_CAPACITY = BS - DIRENT_TAIL.size;
export const ROOT_LIMIT = dxLimit(BS, DX_ROOT_COUNT_OFFSET);
export const NODE_LIMIT = dxLimit(BS, DX_NODE_COUNT_OFFSET);

export interface Htree {
  /** dx_root.indirect_levels: 0 (root → leaves) or 1 (root → nodes → leaves). */
  levels: number;
  nodes: number;
  leaves: number;
  /** perm[k] = index (in image order) of the k-th entry in hash order. */
  perm: Uint32Array;
  /** hashes[k] = hash of entry perm[k]; non-decreasing. */
  hashes: Uint32Array;
  /** Leaf j holds sorted entries [leafStart[j], leafStart[j+1]). */
  leafStart: Uint32Array;
}

/** Directory block layout of an htree: root, nodes, then leaves. */
export const htreeBlocks = (h: Htree): number => 1 + h.nodes + h.leaves;

/**
 * dx_entry hash of leaf j: its first hash, with bit 0 set when that hash
 * continues a run from the previous leaf (so lookups probe both leaves).
 */
export function leafHash(h: Htree, j: number): number {
  if (j === 0) return 0;
  const s = h.leafStart[j]!;
  const v = h.hashes[s]!;
  return h.hashes[s - 1] === v ? (v | 1) >>> 0 : v;
}

const unsupported = (msg: string, hint?: string): PfsError => new PfsError(ErrorCode.UNSUPPORTED, msg, { hint });
const show = (b: Uint8Array): string => JSON.stringify(Buffer.from(b).toString("latin1").slice(0, 60));

/** Refuse names the ext4 directory format cannot hold. */
export function checkName(name: Uint8Array, what: string): void {
  if (name.length === 0) throw unsupported(`${what}: an entry has an empty name`);
  if (name.length > 255) throw unsupported(`${what}: entry ${show(name)}… is ${name.length} bytes; ext4 names are at most 255`, "rename it in the source tree");
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === 0x2f || c === 0) throw unsupported(`${what}: entry ${show(name)} contains '/' or NUL`);
  }
  if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) {
    throw unsupported(`${what}: an entry is named ${show(name)}`);
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

export class DirPlanner {
  readonly htrees = new Map<number, Htree>();

  constructor(
    private readonly hashVersion: number,
    private readonly seed: Uint32Array,
  ) {}

  /**
   * Plan directory `ino` with `count` entries (`nameAt(i)`, names already
   * checked). Returns its number of blocks.
   */
  plan(ino: number, count: number, nameAt: (i: number) => Uint8Array, what: string): number {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += direntLen(nameAt(i).length);
    if (bytes <= LINEAR_CAPACITY) {
      // Duplicate check without allocating strings: bucket by FNV-1a, compare bytes on a bucket hit.
      const seen = new Set<number>();
      for (let i = 0; i < count; i++) {
        const n = nameAt(i);
        let h = 0x811c9dc5;
        for (let k = 0; k < n.length; k++) h = Math.imul(h ^ n[k]!, 0x01000193);
        if (!seen.has(h)) {
          seen.add(h);
          continue;
        }
        // Same FNV hash: a duplicate, or (rarely) two names that collide; compare with every earlier name.
        for (let o = 0; o < i; o++) if (equalBytes(nameAt(o), n)) throw unsupported(`${what}: entry ${show(n)} appears twice`);
      }
      return 1;
    }
    const h = this.buildHtree(count, nameAt, what);
    this.htrees.set(ino, h);
    return htreeBlocks(h);
  }

  private buildHtree(count: number, nameAt: (i: number) => Uint8Array, what: string): Htree {
    const raw = new Uint32Array(count);
    for (let i = 0; i < count; i++) raw[i] = dirHashOnly(this.hashVersion, nameAt(i), this.seed);
    const perm = sortByHash(raw);
    const hashes = new Uint32Array(count);
    for (let k = 0; k < count; k++) hashes[k] = raw[perm[k]!]!;
    // Equal names hash equally: compare names only inside runs of equal hashes.
    for (let k = 1; k < count; k++) {
      if (hashes[k] !== hashes[k - 1]) continue;
      for (let j = k - 1; j >= 0 && hashes[j] === hashes[k]; j--) {
        if (equalBytes(nameAt(perm[j]!), nameAt(perm[k]!))) throw unsupported(`${what}: entry ${show(nameAt(perm[k]!))} appears twice`);
      }
    }
    const starts: number[] = [0];
    let used = 0;
    for (let k = 0; k < count; k++) {
      const len = direntLen(nameAt(perm[k]!).length);
      if (used + len > LEAF_CAPACITY) {
        starts.push(k);
        used = 0;
      }
      used += len;
    }
    const leaves = starts.length;
    starts.push(count);
    let levels = 0;
    let nodes = 0;
    if (leaves > ROOT_LIMIT) {
      levels = 1;
      nodes = Math.ceil(leaves / NODE_LIMIT);
      if (nodes > ROOT_LIMIT) {
        throw unsupported(`${what}: ${count} entries need a 3-level htree (large_dir), which this image format does not use`, "split the directory");
      }
    }
    return { levels, nodes, leaves, perm, hashes, leafStart: Uint32Array.from(starts) };
  }
}

/** Indexes of `h` in (hash, index) order. */
function sortByHash(h: Uint32Array): Uint32Array {
  const n = h.length;
  const perm = new Uint32Array(n);
  if (n < 1 << 22) {
    // Hashes have bit 0 clear: (hash/2) * 2^22 + i < 2^53 packs both into one exact double.
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (h[i]! / 2) * 4194304 + i;
    keys.sort();
    for (let k = 0; k < n; k++) perm[k] = keys[k]! % 4194304;
    return perm;
  }
  for (let i = 0; i < n; i++) perm[i] = i;
  return perm.sort((a, b) => h[a]! - h[b]! || a - b);
}
