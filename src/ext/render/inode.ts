/**
 * Inode table blocks (inodes.rst): 16 inodes of 256 bytes per block. Each
 * inode renders from the plan's per-inode arrays plus `tree.node()` of the
 * inode itself, so one block costs 16 node look-ups, never a tree scan.
 */
import type { TreeNode } from "../../puzzlefs/tree.ts";
import { FT, GEOM, INO, INODE_FL, MODE_OF_FT } from "../constants.ts";
import { setInodeCsum } from "../csum.ts";
import { IF } from "../layout/inodes.ts";
import { encodeTime } from "../layout/options.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { canonicalXattrs } from "../layout/xattrs.ts";
import { INODE, INODE_XATTR_OFFSET } from "../struct/inode.ts";
import { StructView } from "../struct/field.ts";
import { encodeIbodyXattrs } from "../struct/xattr.ts";
import { treeBlocksOf, writeExtentRoot } from "./extent.ts";

const LOST_FOUND_NODE: TreeNode = {
  ino: 0,
  kind: "dir",
  permissions: 0o700,
  uid: 0,
  gid: 0,
  size: 0,
  major: 0,
  minor: 0,
  xattrs: [],
  symlinkTarget: null,
  entries: [],
};

/** The tree node behind ext inode e (a fixed node for a synthesized lost+found). */
export function nodeOf(plan: ExtPlan, e: number): TreeNode {
  return plan.inodes.flags[e]! & IF.SYNTH_LPF ? LOST_FOUND_NODE : plan.tree.node(plan.inodes.treeIno[e]!);
}

/** Physical block of the shared xattr block with 0-based index x. */
export const xattrBlockPhys = (plan: ExtPlan, x: number): number => plan.geo.data.phys(plan.sections.xattr + x);

/**
 * Device numbers in i_block (kernel ext4_inode: old_encode_dev when both
 * fit in 8 bits, else new_encode_dev in i_block[1]).
 */
function writeDevice(iblock: DataView, major: number, minor: number): void {
  if (major < 256 && minor < 256) iblock.setUint32(0, (major << 8) | minor, true);
  else iblock.setUint32(4, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
}

/** Render ext inode e into `out` (exactly 256 zeroed bytes). */
export function renderInode(plan: ExtPlan, e: number, out: Uint8Array): void {
  const { inodes, opts } = plan;
  if (e > inodes.count) return; // unused: all zeros, which checksum verifiers accept
  const v = new StructView(INODE, out);
  if (e < GEOM.FIRST_INO && e !== INO.ROOT) {
    setInodeCsum(opts.csumSeed, e, out); // reserved: zeroed with a checksum, as mke2fs writes them
    return;
  }
  const n = nodeOf(plan, e);
  const ft = inodes.ft[e]!;
  const nblocks = inodes.nblocks[e]!;
  const xb = inodes.xattrBlock[e]!;
  let size = 0;
  if (ft === FT.DIR) size = nblocks * GEOM.BLOCK_SIZE;
  else if (ft === FT.SYMLINK) size = n.symlinkTarget!.length;
  else if (n.kind === "file") size = n.size;

  v.set("i_mode", MODE_OF_FT[ft]! | (n.permissions & 0o7777));
  v.set("i_uid", n.uid & 0xffff).set("l_i_uid_high", n.uid >>> 16);
  v.set("i_gid", n.gid & 0xffff).set("l_i_gid_high", n.gid >>> 16);
  v.set("i_size_lo", size % 0x1_0000_0000).set("i_size_high", Math.floor(size / 0x1_0000_0000));
  const t = encodeTime(opts.mtime);
  v.set("i_atime", t.lo).set("i_ctime", t.lo).set("i_mtime", t.lo).set("i_crtime", t.lo);
  v.set("i_atime_extra", t.extra).set("i_ctime_extra", t.extra).set("i_mtime_extra", t.extra).set("i_crtime_extra", t.extra);
  v.set("i_links_count", inodes.nlink[e]!);
  v.set("i_extra_isize", GEOM.EXTRA_ISIZE);

  const iblock = v.bytes("i_block");
  let flags = 0;
  let blocks = 0;
  const extentMapped = ft === FT.DIR || ft === FT.REG_FILE || (ft === FT.SYMLINK && inodes.flags[e]! & IF.SLOW_SYMLINK);
  if (extentMapped) {
    flags |= INODE_FL.EXTENTS;
    if (inodes.flags[e]! & IF.HTREE) flags |= INODE_FL.INDEX;
    writeExtentRoot(plan, e, iblock);
    blocks = nblocks + treeBlocksOf(plan, e);
  } else if (ft === FT.SYMLINK) {
    iblock.set(n.symlinkTarget!); // fast symlink: the target itself, NUL-padded
  } else if (ft === FT.CHRDEV || ft === FT.BLKDEV) {
    writeDevice(new DataView(iblock.buffer, iblock.byteOffset, iblock.byteLength), n.major, n.minor);
  }
  if (xb !== 0) {
    const p = xattrBlockPhys(plan, xb - 1);
    v.set("i_file_acl_lo", p % 0x1_0000_0000).set("l_i_file_acl_high", Math.floor(p / 0x1_0000_0000));
    blocks += 1;
  }
  const sectors = blocks * (GEOM.BLOCK_SIZE / 512); // huge_file without HUGE_FILE_FL: 512-byte units, 48 bits
  v.set("i_blocks_lo", sectors % 0x1_0000_0000).set("l_i_blocks_high", Math.floor(sectors / 0x1_0000_0000));
  v.set("i_flags", flags);
  if (inodes.flags[e]! & IF.XATTR_IBODY) {
    encodeIbodyXattrs(out.subarray(INODE_XATTR_OFFSET, INODE.size), canonicalXattrs(n.xattrs, `inode ${e}`));
  }
  setInodeCsum(opts.csumSeed, e, out);
}

/** Block `b` of group `g`'s inode table. */
export function renderInodeTableBlock(plan: ExtPlan, g: number, b: number): Uint8Array {
  const buf = new Uint8Array(GEOM.BLOCK_SIZE);
  const first = g * plan.geo.inodesPerGroup + b * GEOM.INODES_PER_BLOCK + 1;
  for (let i = 0; i < GEOM.INODES_PER_BLOCK; i++) {
    renderInode(plan, first + i, buf.subarray(i * GEOM.INODE_SIZE, (i + 1) * GEOM.INODE_SIZE));
  }
  return buf;
}
