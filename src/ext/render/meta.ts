/**
 * Group metadata: the superblock (super.rst), group descriptors
 * (group_descr.rst) and the block and inode bitmaps (bitmaps.rst). Bitmaps
 * derive from the plan's free ranges and the dense inode numbering; the
 * descriptors carry their checksums, so a GDT block renders its groups'
 * bitmaps to checksum them (O(groups in the block)).
 */
import { BG_FLAGS, CSUM_TYPE_CRC32C, DEFM, DX_HASH, FEATURE_COMPAT, FEATURE_INCOMPAT, FEATURE_RO_COMPAT, GEOM, SB_FLAGS, SB_MAGIC } from "../constants.ts";
import { setBlockBitmapCsum, setGroupDescCsum, setInodeBitmapCsum, setSuperblockCsum } from "../csum.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { StructView } from "../struct/field.ts";
import { GROUP_DESC } from "../struct/groupdesc.ts";
import { SUPERBLOCK, SUPERBLOCK_OFFSET } from "../struct/superblock.ts";

const BS = GEOM.BLOCK_SIZE;
const BPG = GEOM.BLOCKS_PER_GROUP;

export const FEATURES = {
  compat: FEATURE_COMPAT.EXT_ATTR | FEATURE_COMPAT.DIR_INDEX,
  incompat: FEATURE_INCOMPAT.FILETYPE | FEATURE_INCOMPAT.EXTENTS | FEATURE_INCOMPAT.FLEX_BG,
  roCompat:
    FEATURE_RO_COMPAT.SPARSE_SUPER |
    FEATURE_RO_COMPAT.LARGE_FILE |
    FEATURE_RO_COMPAT.HUGE_FILE |
    FEATURE_RO_COMPAT.DIR_NLINK |
    FEATURE_RO_COMPAT.EXTRA_ISIZE |
    FEATURE_RO_COMPAT.METADATA_CSUM |
    FEATURE_RO_COMPAT.READONLY,
} as const;

export const freeBlocks = (plan: ExtPlan): number => plan.geo.free.reduce((a, [, n]) => a + n, 0);
export const usedInodesIn = (plan: ExtPlan, g: number): number => Math.min(plan.geo.inodesPerGroup, Math.max(0, plan.inodes.count - g * plan.geo.inodesPerGroup));

/** The 1024-byte superblock copy kept in group `group`. */
export function renderSuperblock(plan: ExtPlan, group: number): Uint8Array {
  const { geo, opts } = plan;
  const sb = new Uint8Array(SUPERBLOCK.size);
  const v = new StructView(SUPERBLOCK, sb);
  v.set("s_inodes_count", geo.inodeCount).set("s_blocks_count_lo", geo.blocks).set("s_r_blocks_count_lo", 0);
  v.set("s_free_blocks_count_lo", freeBlocks(plan)).set("s_free_inodes_count", geo.inodeCount - plan.inodes.count);
  v.set("s_first_data_block", 0).set("s_log_block_size", GEOM.LOG_BLOCK_SIZE).set("s_log_cluster_size", GEOM.LOG_BLOCK_SIZE);
  v.set("s_blocks_per_group", BPG).set("s_clusters_per_group", BPG).set("s_inodes_per_group", geo.inodesPerGroup);
  // Mount/write/check times stay 0: a future --mtime must not look like a clock problem to e2fsck.
  v.set("s_max_mnt_count", 0xffff).set("s_magic", SB_MAGIC).set("s_state", 1).set("s_errors", 1);
  v.set("s_creator_os", 0).set("s_rev_level", 1).set("s_first_ino", GEOM.FIRST_INO).set("s_inode_size", GEOM.INODE_SIZE);
  v.set("s_block_group_nr", group);
  v.set("s_feature_compat", FEATURES.compat).set("s_feature_incompat", FEATURES.incompat).set("s_feature_ro_compat", FEATURES.roCompat);
  v.setBytes("s_uuid", opts.uuid).setBytes("s_volume_name", opts.label);
  const seed = v.bytes("s_hash_seed");
  const sdv = new DataView(seed.buffer, seed.byteOffset, 16);
  for (let i = 0; i < 4; i++) sdv.setUint32(i * 4, opts.hashSeed[i]!, true);
  v.set("s_def_hash_version", DX_HASH.HALF_MD4).set("s_desc_size", 0);
  v.set("s_default_mount_opts", DEFM.XATTR_USER | DEFM.ACL);
  const mk = Math.max(0, opts.mtime);
  v.set("s_mkfs_time", mk % 0x1_0000_0000).set("s_mkfs_time_hi", Math.floor(mk / 0x1_0000_0000));
  v.set("s_min_extra_isize", GEOM.EXTRA_ISIZE).set("s_want_extra_isize", GEOM.EXTRA_ISIZE);
  v.set("s_flags", SB_FLAGS.UNSIGNED_HASH).set("s_log_groups_per_flex", GEOM.LOG_GROUPS_PER_FLEX);
  v.set("s_checksum_type", CSUM_TYPE_CRC32C);
  setSuperblockCsum(sb);
  return sb;
}

/** Block bitmap of group g: everything in use except the plan's free ranges; bits past the end set. */
export function renderBlockBitmap(plan: ExtPlan, g: number): Uint8Array {
  const bm = new Uint8Array(BS).fill(0xff);
  const lo = g * BPG;
  const hi = lo + BPG;
  for (const [s, n] of plan.geo.free) {
    const a = Math.max(s, lo);
    const b = Math.min(s + n, hi);
    if (b > a) setBits(bm, a - lo, b - lo, false);
  }
  return bm;
}

/** Set or clear bits [a, b) of a bitmap (LSB-first within each byte, bitmaps.rst). */
function setBits(bm: Uint8Array, a: number, b: number, on: boolean): void {
  let i = a;
  for (; i < b && i & 7; i++) bm[i >>> 3] = on ? bm[i >>> 3]! | (1 << (i & 7)) : bm[i >>> 3]! & ~(1 << (i & 7));
  const whole = (b - i) >>> 3;
  bm.fill(on ? 0xff : 0, i >>> 3, (i >>> 3) + whole);
  for (i += whole * 8; i < b; i++) bm[i >>> 3] = on ? bm[i >>> 3]! | (1 << (i & 7)) : bm[i >>> 3]! & ~(1 << (i & 7));
}

/** Inode bitmap of group g: used inodes are 1..count (dense); padding past inodes_per_group set. */
export function renderInodeBitmap(plan: ExtPlan, g: number): Uint8Array {
  const bm = new Uint8Array(BS);
  const used = usedInodesIn(plan, g);
  setBits(bm, 0, used, true);
  setBits(bm, plan.geo.inodesPerGroup, BS * 8, true);
  return bm;
}

function writeGroupDesc(plan: ExtPlan, g: number, desc: Uint8Array): void {
  const { geo } = plan;
  const used = usedInodesIn(plan, g);
  new StructView(GROUP_DESC, desc)
    .set("bg_block_bitmap_lo", geo.bbLoc[g]!)
    .set("bg_inode_bitmap_lo", geo.ibLoc[g]!)
    .set("bg_inode_table_lo", geo.itLoc[g]!)
    .set("bg_free_blocks_count_lo", geo.freeInGroup[g]!)
    .set("bg_free_inodes_count_lo", geo.inodesPerGroup - used)
    .set("bg_used_dirs_count_lo", plan.usedDirs[g]!)
    .set("bg_flags", BG_FLAGS.INODE_ZEROED)
    .set("bg_itable_unused_lo", geo.inodesPerGroup - used);
  setBlockBitmapCsum(plan.opts.csumSeed, desc, renderBlockBitmap(plan, g));
  setInodeBitmapCsum(plan.opts.csumSeed, desc, renderInodeBitmap(plan, g), geo.inodesPerGroup);
  setGroupDescCsum(plan.opts.csumSeed, g, desc);
}

/** Block k (0-based) of the group descriptor table. */
export function renderGdtBlock(plan: ExtPlan, k: number): Uint8Array {
  const buf = new Uint8Array(BS);
  const first = k * GEOM.DESCS_PER_BLOCK;
  const last = Math.min(plan.geo.groups, first + GEOM.DESCS_PER_BLOCK);
  for (let g = first; g < last; g++) {
    const at = (g - first) * GEOM.DESC_SIZE;
    writeGroupDesc(plan, g, buf.subarray(at, at + GEOM.DESC_SIZE));
  }
  return buf;
}

/** Block `b` of the superblock+GDT area of group `g` (g = 0: the primary copy). */
export function renderSbGdtBlock(plan: ExtPlan, g: number, b: number, gdtCache: (k: number) => Uint8Array): Uint8Array {
  if (b > 0) return gdtCache(b - 1);
  const buf = new Uint8Array(BS);
  buf.set(renderSuperblock(plan, g), g === 0 ? SUPERBLOCK_OFFSET : 0);
  return buf;
}
