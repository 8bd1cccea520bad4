/**
 * metadata_csum checksums (Documentation/filesystems/ext4/checksums.rst),
 * computed in one place with a set/verify pair per structure (STYLE.md §7).
 * Renderers call `set*`, tests call `verify*`.
 *
 * `crc32cRaw(crc, bytes)` is the kernel's/e2fsprogs' `crc32c_le`: reflected
 * Castagnoli polynomial, no pre- or post-inversion. The standard CRC-32C of
 * RFC 3720 is `~crc32cRaw(~0, bytes)`. The per-filesystem seed is
 * `crc32cRaw(~0, s_uuid)` (no metadata_csum_seed feature). All multi-byte
 * inputs (inode number, generation, group, block number) are little-endian.
 */
import { GEOM } from "./constants.ts";
import { SUPERBLOCK } from "./struct/superblock.ts";
import { GROUP_DESC } from "./struct/groupdesc.ts";
import { INODE } from "./struct/inode.ts";
import { EXTENT, EXTENT_HEADER } from "./struct/extent.ts";
import { DIRENT_TAIL, DIRENT_TAIL_FT } from "./struct/dirent.ts";
import { DX_ENTRY, DX_TAIL } from "./struct/dx.ts";
import { XATTR_HEADER } from "./struct/xattr.ts";

/** Slicing-by-8 tables for the reflected polynomial 0x82F63B78. */
const T = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) for (let s = 1; s < 8; s++) t[s * 256 + i] = (t[(s - 1) * 256 + i]! >>> 8) ^ t[t[(s - 1) * 256 + i]! & 0xff]!;
  return t;
})();

/** crc32c_le(crc, bytes[start, end)): no inversions (see module comment). */
export function crc32cRaw(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = (c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    c =
      T[7 * 256 + (lo & 0xff)]! ^
      T[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      T[5 * 256 + ((lo >>> 16) & 0xff)]! ^
      T[4 * 256 + (lo >>> 24)]! ^
      T[3 * 256 + bytes[i + 4]!]! ^
      T[2 * 256 + bytes[i + 5]!]! ^
      T[256 + bytes[i + 6]!]! ^
      T[bytes[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** The standard CRC-32C (RFC 3720 §B.4). */
export function crc32c(bytes: Uint8Array): number {
  return ~crc32cRaw(0xffffffff, bytes) >>> 0;
}

const le32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};
const le64 = (v: number): Uint8Array => {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, v % 0x1_0000_0000, true);
  dv.setUint32(4, Math.floor(v / 0x1_0000_0000), true);
  return b;
};
const getU32 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
const putU32 = (b: Uint8Array, off: number, v: number): void => new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(off, v >>> 0, true);
const getU16 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(off, true);
const putU16 = (b: Uint8Array, off: number, v: number): void => new DataView(b.buffer, b.byteOffset, b.byteLength).setUint16(off, v & 0xffff, true);

/** The checksum seed every structure but the superblock starts from. */
export function csumSeed(uuid: Uint8Array): number {
  return crc32cRaw(0xffffffff, uuid);
}

/** crc of (seed, le32 ino, le32 generation): the common prefix of per-inode checksums. */
function inoSeed(seed: number, ino: number, gen: number): number {
  return crc32cRaw(crc32cRaw(seed, le32(ino)), le32(gen));
}

// --- superblock: crc32c(~0, bytes before s_checksum) ---------------------------------------
const SB_CSUM = SUPERBLOCK.f.s_checksum.off;
const sbCsum = (sb: Uint8Array): number => crc32cRaw(0xffffffff, sb, 0, SB_CSUM);
export function setSuperblockCsum(sb: Uint8Array): void {
  putU32(sb, SB_CSUM, sbCsum(sb));
}
export function verifySuperblockCsum(sb: Uint8Array): boolean {
  return getU32(sb, SB_CSUM) === sbCsum(sb);
}

// --- group descriptor: crc32c(seed, le32 group, desc with bg_checksum = 0) & 0xffff ---------
const GD_CSUM = GROUP_DESC.f.bg_checksum.off;
function gdCsum(seed: number, group: number, desc: Uint8Array): number {
  let c = crc32cRaw(seed, le32(group));
  c = crc32cRaw(c, desc, 0, GD_CSUM);
  c = crc32cRaw(c, new Uint8Array(2));
  c = crc32cRaw(c, desc, GD_CSUM + 2, desc.length);
  return c & 0xffff;
}
/** `desc` is exactly one descriptor (GEOM.DESC_SIZE bytes). */
export function setGroupDescCsum(seed: number, group: number, desc: Uint8Array): void {
  putU16(desc, GD_CSUM, gdCsum(seed, group, desc));
}
export function verifyGroupDescCsum(seed: number, group: number, desc: Uint8Array): boolean {
  return getU16(desc, GD_CSUM) === gdCsum(seed, group, desc);
}

// --- bitmaps: crc32c(seed, bitmap bytes); 32-byte descriptors keep the low 16 bits ---------
/** Block bitmap: blocks_per_group/8 bytes. Inode bitmap: inodes_per_group/8 bytes. */
export function bitmapCsum(seed: number, bitmap: Uint8Array, bytes: number): number {
  const c = crc32cRaw(seed, bitmap, 0, bytes);
  return GEOM.DESC_SIZE >= 64 ? c : c & 0xffff;
}
export function setBlockBitmapCsum(seed: number, desc: Uint8Array, bitmap: Uint8Array): void {
  putU16(desc, GROUP_DESC.f.bg_block_bitmap_csum_lo.off, bitmapCsum(seed, bitmap, GEOM.BLOCKS_PER_GROUP / 8));
}
export function verifyBlockBitmapCsum(seed: number, desc: Uint8Array, bitmap: Uint8Array): boolean {
  return getU16(desc, GROUP_DESC.f.bg_block_bitmap_csum_lo.off) === bitmapCsum(seed, bitmap, GEOM.BLOCKS_PER_GROUP / 8);
}
export function setInodeBitmapCsum(seed: number, desc: Uint8Array, bitmap: Uint8Array, inodesPerGroup: number): void {
  putU16(desc, GROUP_DESC.f.bg_inode_bitmap_csum_lo.off, bitmapCsum(seed, bitmap, inodesPerGroup / 8));
}
export function verifyInodeBitmapCsum(seed: number, desc: Uint8Array, bitmap: Uint8Array, inodesPerGroup: number): boolean {
  return getU16(desc, GROUP_DESC.f.bg_inode_bitmap_csum_lo.off) === bitmapCsum(seed, bitmap, inodesPerGroup / 8);
}

// --- inode: crc32c(seed, ino, gen, whole inode with both checksum halves = 0) ---------------
const I_LO = INODE.f.l_i_checksum_lo.off;
const I_HI = INODE.f.i_checksum_hi.off;
/** The high half exists when i_extra_isize covers i_checksum_hi (offset 0x84 = 128 + 4). */
const hasHi = (inode: Uint8Array): boolean => getU16(inode, INODE.f.i_extra_isize.off) >= 4;
function inodeCsum(seed: number, ino: number, inode: Uint8Array): number {
  const gen = getU32(inode, INODE.f.i_generation.off);
  let c = inoSeed(seed, ino, gen);
  c = crc32cRaw(c, inode, 0, I_LO);
  c = crc32cRaw(c, new Uint8Array(2));
  if (!hasHi(inode)) return crc32cRaw(c, inode, I_LO + 2, inode.length);
  c = crc32cRaw(c, inode, I_LO + 2, I_HI);
  c = crc32cRaw(c, new Uint8Array(2));
  return crc32cRaw(c, inode, I_HI + 2, inode.length);
}
/** `inode` is exactly one on-disk inode (GEOM.INODE_SIZE bytes). */
export function setInodeCsum(seed: number, ino: number, inode: Uint8Array): void {
  const c = inodeCsum(seed, ino, inode);
  putU16(inode, I_LO, c & 0xffff);
  if (hasHi(inode)) putU16(inode, I_HI, c >>> 16);
}
export function verifyInodeCsum(seed: number, ino: number, inode: Uint8Array): boolean {
  const c = inodeCsum(seed, ino, inode);
  if (hasHi(inode)) return getU16(inode, I_LO) === (c & 0xffff) && getU16(inode, I_HI) === c >>> 16;
  return getU16(inode, I_LO) === (c & 0xffff);
}

// --- extent tree block: crc32c(seed, ino, gen, header + eh_max entries), tail after them ---
const extentTailOff = (blk: Uint8Array): number => EXTENT_HEADER.size + EXTENT.size * getU16(blk, EXTENT_HEADER.f.eh_max.off);
export function setExtentBlockCsum(seed: number, ino: number, gen: number, blk: Uint8Array): void {
  const t = extentTailOff(blk);
  putU32(blk, t, crc32cRaw(inoSeed(seed, ino, gen), blk, 0, t));
}
export function verifyExtentBlockCsum(seed: number, ino: number, gen: number, blk: Uint8Array): boolean {
  const t = extentTailOff(blk);
  return getU32(blk, t) === crc32cRaw(inoSeed(seed, ino, gen), blk, 0, t);
}

// --- directory leaf: crc32c(seed, ino, gen, block up to the 12-byte tail) -------------------
function direntTailOff(blk: Uint8Array): number {
  const t = blk.length - DIRENT_TAIL.size;
  if (getU32(blk, t) !== 0 || getU16(blk, t + 4) !== DIRENT_TAIL.size || blk[t + 6] !== 0 || blk[t + 7] !== DIRENT_TAIL_FT) {
    throw new RangeError("directory leaf block has no dirent tail");
  }
  return t;
}
export function setDirBlockCsum(seed: number, ino: number, gen: number, blk: Uint8Array): void {
  const t = direntTailOff(blk);
  putU32(blk, t + 8, crc32cRaw(inoSeed(seed, ino, gen), blk, 0, t));
}
export function verifyDirBlockCsum(seed: number, ino: number, gen: number, blk: Uint8Array): boolean {
  const t = direntTailOff(blk);
  return getU32(blk, t + 8) === crc32cRaw(inoSeed(seed, ino, gen), blk, 0, t);
}

// --- htree index block: crc32c(seed, ino, gen, header + `count` entries, dt_reserved, 0) --
/** `countOffset` is DX_ROOT_COUNT_OFFSET (block 0) or DX_NODE_COUNT_OFFSET. */
function dxCsum(seed: number, ino: number, gen: number, blk: Uint8Array, countOffset: number): { crc: number; tail: number } {
  const limit = getU16(blk, countOffset);
  const count = getU16(blk, countOffset + 2);
  const tail = countOffset + limit * DX_ENTRY.size;
  if (tail + DX_TAIL.size > blk.length) throw new RangeError("htree block has no room for dx_tail");
  let c = crc32cRaw(inoSeed(seed, ino, gen), blk, 0, countOffset + count * DX_ENTRY.size);
  c = crc32cRaw(c, blk, tail, tail + 4);
  c = crc32cRaw(c, new Uint8Array(4));
  return { crc: c, tail };
}
export function setDxCsum(seed: number, ino: number, gen: number, blk: Uint8Array, countOffset: number): void {
  const { crc, tail } = dxCsum(seed, ino, gen, blk, countOffset);
  putU32(blk, tail + 4, crc);
}
export function verifyDxCsum(seed: number, ino: number, gen: number, blk: Uint8Array, countOffset: number): boolean {
  const { crc, tail } = dxCsum(seed, ino, gen, blk, countOffset);
  return getU32(blk, tail + 4) === crc;
}

// --- xattr block: crc32c(seed, le64 physical block number, block with h_checksum = 0) ------
const XA_CSUM = XATTR_HEADER.f.h_checksum.off;
function xattrCsum(seed: number, blockNr: number, blk: Uint8Array): number {
  let c = crc32cRaw(seed, le64(blockNr));
  c = crc32cRaw(c, blk, 0, XA_CSUM);
  c = crc32cRaw(c, new Uint8Array(4));
  return crc32cRaw(c, blk, XA_CSUM + 4, blk.length);
}
export function setXattrBlockCsum(seed: number, blockNr: number, blk: Uint8Array): void {
  putU32(blk, XA_CSUM, xattrCsum(seed, blockNr, blk));
}
export function verifyXattrBlockCsum(seed: number, blockNr: number, blk: Uint8Array): boolean {
  return getU32(blk, XA_CSUM) === xattrCsum(seed, blockNr, blk);
}
