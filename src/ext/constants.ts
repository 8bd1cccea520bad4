/**
 * ext4 constants used by the synthesized image, as `as const` tables
 * (STYLE.md §4). Values from the kernel's Documentation/filesystems/ext4/
 * (super.rst, inodes.rst, directory.rst, attributes.rst, ifork.rst).
 */

/** Fixed geometry of every image we synthesize (nbd-and-ext-notes.md §4.2). */
export const GEOM = {
  BLOCK_SIZE: 4096,
  LOG_BLOCK_SIZE: 2, // s_log_block_size: 1024 << 2
  INODE_SIZE: 256,
  INODES_PER_BLOCK: 16,
  BLOCKS_PER_GROUP: 32768, // one block bitmap block = 4096 * 8 bits
  DESC_SIZE: 32, // no 64bit feature: 32-byte group descriptors
  DESCS_PER_BLOCK: 128,
  FIRST_INO: 11,
  EXTRA_ISIZE: 32, // i_extra_isize: up to and including i_projid
  LOG_GROUPS_PER_FLEX: 4,
  /** Maximum blocks one initialized extent maps (ifork.rst). */
  MAX_EXTENT_LEN: 32768,
  /** EXT4_LINK_MAX: above it a directory's i_links_count is 1 (dir_nlink). */
  LINK_MAX: 65000,
} as const;

export const SB_MAGIC = 0xef53;

export const FEATURE_COMPAT = {
  EXT_ATTR: 0x0008,
  DIR_INDEX: 0x0020,
} as const;

export const FEATURE_INCOMPAT = {
  FILETYPE: 0x0002,
  EXTENTS: 0x0040,
  FLEX_BG: 0x0200,
} as const;

export const FEATURE_RO_COMPAT = {
  SPARSE_SUPER: 0x0001,
  LARGE_FILE: 0x0002,
  HUGE_FILE: 0x0008,
  DIR_NLINK: 0x0020,
  EXTRA_ISIZE: 0x0040,
  METADATA_CSUM: 0x0400,
  /** The kernel refuses a read-write mount (super.rst). */
  READONLY: 0x1000,
} as const;

/** s_flags: directory hashes treat name bytes as unsigned chars. */
export const SB_FLAGS = { SIGNED_HASH: 0x1, UNSIGNED_HASH: 0x2 } as const;

/** s_default_mount_opts. */
export const DEFM = { XATTR_USER: 0x4, ACL: 0x8 } as const;

/** bg_flags: the inode table reads as zeros where unused. */
export const BG_FLAGS = { INODE_UNINIT: 0x1, BLOCK_UNINIT: 0x2, INODE_ZEROED: 0x4 } as const;

/** i_mode file type bits. */
export const S_IF = {
  FIFO: 0x1000,
  CHR: 0x2000,
  DIR: 0x4000,
  BLK: 0x6000,
  REG: 0x8000,
  LNK: 0xa000,
  SOCK: 0xc000,
} as const;

/** i_flags. */
export const INODE_FL = {
  INDEX: 0x1000, // htree directory
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
} as const;

/** ext4_dir_entry_2.file_type (directory.rst "ftype"). */
export const FT = {
  UNKNOWN: 0,
  REG_FILE: 1,
  DIR: 2,
  CHRDEV: 3,
  BLKDEV: 4,
  FIFO: 5,
  SOCK: 6,
  SYMLINK: 7,
} as const;
export type FileType = (typeof FT)[keyof typeof FT];

/** S_IF bits for each dirent file type (index = FT value). */
export const MODE_OF_FT: readonly number[] = [0, S_IF.REG, S_IF.DIR, S_IF.CHR, S_IF.BLK, S_IF.FIFO, S_IF.SOCK, S_IF.LNK];

/** dx_root_info.hash_version (directory.rst "dirhash"). */
export const DX_HASH = {
  LEGACY: 0,
  HALF_MD4: 1,
  TEA: 2,
  LEGACY_UNSIGNED: 3,
  HALF_MD4_UNSIGNED: 4,
  TEA_UNSIGNED: 5,
} as const;

/** Reserved inode numbers (special_inodes.rst). */
export const INO = { BAD_BLOCKS: 1, ROOT: 2, LOST_FOUND: 11 } as const;

/** crc32c is the only metadata_csum algorithm (s_checksum_type). */
export const CSUM_TYPE_CRC32C = 1;
