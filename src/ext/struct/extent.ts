/**
 * Extent tree structures (ifork.rst): a 12-byte header, then 12-byte leaf
 * extents (depth 0) or index entries (depth > 0). In the inode the tree root
 * fills i_block (60 bytes: header + 4 entries); in a tree block it is
 * followed by as many entries as fit before the 4-byte checksum tail.
 */
import { defineStruct, StructView } from "./field.ts";

export const EXTENT_HEADER = defineStruct("ext4_extent_header", 12, [
  ["eh_magic", 0x0, 2, "0xF30A"],
  ["eh_entries", 0x2, 2, "valid entries following"],
  ["eh_max", 0x4, 2, "capacity in entries"],
  ["eh_depth", 0x6, 2, "0 = leaves follow"],
  ["eh_generation", 0x8, 4, "unused"],
]);

export const EXTENT = defineStruct("ext4_extent", 12, [
  ["ee_block", 0x0, 4, "first file block covered"],
  ["ee_len", 0x4, 2, "blocks covered (<= 32768 initialized)"],
  ["ee_start_hi", 0x6, 2, "physical block, high 16 bits"],
  ["ee_start_lo", 0x8, 4, "physical block, low 32 bits"],
]);

export const EXTENT_IDX = defineStruct("ext4_extent_idx", 12, [
  ["ei_block", 0x0, 4, "first file block covered by the subtree"],
  ["ei_leaf_lo", 0x4, 4, "next-level block, low 32 bits"],
  ["ei_leaf_hi", 0x8, 2, "next-level block, high 16 bits"],
  ["ei_unused", 0xa, 2, "unused"],
]);

export const EXTENT_TAIL = defineStruct("ext4_extent_tail", 4, [["et_checksum", 0x0, 4, "crc32c(seed, ino, gen, block up to here)"]]);

export const EXTENT_MAGIC = 0xf30a;
/** Entries in the in-inode root (60 bytes of i_block). */
export const EXTENTS_IN_INODE = 4;
/** Entries in a 4 KiB tree block: (4096 - 12 - 4) / 12. */
export const EXTENTS_PER_BLOCK = Math.floor((4096 - EXTENT_HEADER.size - EXTENT_TAIL.size) / EXTENT.size);

export function writeExtentHeader(buf: Uint8Array, off: number, entries: number, max: number, depth: number): void {
  new StructView(EXTENT_HEADER, buf, off).set("eh_magic", EXTENT_MAGIC).set("eh_entries", entries).set("eh_max", max).set("eh_depth", depth).set("eh_generation", 0);
}

export function writeExtent(buf: Uint8Array, off: number, lblk: number, len: number, pblk: number): void {
  new StructView(EXTENT, buf, off)
    .set("ee_block", lblk)
    .set("ee_len", len)
    .set("ee_start_hi", Math.floor(pblk / 0x1_0000_0000))
    .set("ee_start_lo", pblk % 0x1_0000_0000);
}

export function writeExtentIdx(buf: Uint8Array, off: number, lblk: number, leaf: number): void {
  new StructView(EXTENT_IDX, buf, off)
    .set("ei_block", lblk)
    .set("ei_leaf_lo", leaf % 0x1_0000_0000)
    .set("ei_leaf_hi", Math.floor(leaf / 0x1_0000_0000))
    .set("ei_unused", 0);
}
