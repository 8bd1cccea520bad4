/**
 * struct ext4_group_desc (group_descr.rst). Without the 64bit feature only
 * the first 32 bytes are on disk (s_desc_size 0 means 32), so bitmap
 * checksums keep their low 16 bits; the full 64-byte table is declared for
 * completeness and the layout test.
 */
import { defineStruct } from "./field.ts";

export const GROUP_DESC = defineStruct("ext4_group_desc", 64, [
  ["bg_block_bitmap_lo", 0x00, 4, "block bitmap location"],
  ["bg_inode_bitmap_lo", 0x04, 4, "inode bitmap location"],
  ["bg_inode_table_lo", 0x08, 4, "inode table location"],
  ["bg_free_blocks_count_lo", 0x0c, 2, "free blocks"],
  ["bg_free_inodes_count_lo", 0x0e, 2, "free inodes"],
  ["bg_used_dirs_count_lo", 0x10, 2, "directories"],
  ["bg_flags", 0x12, 2, "INODE_UNINIT / BLOCK_UNINIT / INODE_ZEROED"],
  ["bg_exclude_bitmap_lo", 0x14, 4, "snapshot exclusion bitmap"],
  ["bg_block_bitmap_csum_lo", 0x18, 2, "crc32c(seed, block bitmap) low 16"],
  ["bg_inode_bitmap_csum_lo", 0x1a, 2, "crc32c(seed, inode bitmap) low 16"],
  ["bg_itable_unused_lo", 0x1c, 2, "unused inodes at the end of the table"],
  ["bg_checksum", 0x1e, 2, "crc32c(seed, group, desc) low 16"],
  ["bg_block_bitmap_hi", 0x20, 4, "64bit only"],
  ["bg_inode_bitmap_hi", 0x24, 4, "64bit only"],
  ["bg_inode_table_hi", 0x28, 4, "64bit only"],
  ["bg_free_blocks_count_hi", 0x2c, 2, "64bit only"],
  ["bg_free_inodes_count_hi", 0x2e, 2, "64bit only"],
  ["bg_used_dirs_count_hi", 0x30, 2, "64bit only"],
  ["bg_itable_unused_hi", 0x32, 2, "64bit only"],
  ["bg_exclude_bitmap_hi", 0x34, 4, "64bit only"],
  ["bg_block_bitmap_csum_hi", 0x38, 2, "64bit only"],
  ["bg_inode_bitmap_csum_hi", 0x3a, 2, "64bit only"],
  ["bg_reserved", 0x3c, 4, "padding"],
]);
