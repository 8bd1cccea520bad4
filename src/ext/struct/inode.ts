/**
 * struct ext4_inode, 256 bytes (inodes.rst): the 128-byte base, the extra
 * fields covered by i_extra_isize = 32, then 96 bytes of in-inode xattr
 * space (attributes.rst "inline" EAs).
 */
import { defineStruct } from "./field.ts";

export const INODE = defineStruct("ext4_inode", 256, [
  ["i_mode", 0x00, 2, "file type and permissions"],
  ["i_uid", 0x02, 2, "owner uid, low 16 bits"],
  ["i_size_lo", 0x04, 4, "size, low 32 bits"],
  ["i_atime", 0x08, 4, "access time"],
  ["i_ctime", 0x0c, 4, "change time"],
  ["i_mtime", 0x10, 4, "modification time"],
  ["i_dtime", 0x14, 4, "deletion time"],
  ["i_gid", 0x18, 2, "group, low 16 bits"],
  ["i_links_count", 0x1a, 2, "hard links"],
  ["i_blocks_lo", 0x1c, 4, "512-byte units allocated, low 32 bits"],
  ["i_flags", 0x20, 4, "EXTENTS_FL, INDEX_FL, ..."],
  ["i_osd1", 0x24, 4, "l_i_version"],
  ["i_block", 0x28, 60, "extent tree root, fast symlink or device number"],
  ["i_generation", 0x64, 4, "file version (NFS)"],
  ["i_file_acl_lo", 0x68, 4, "xattr block, low 32 bits"],
  ["i_size_high", 0x6c, 4, "size, high 32 bits"],
  ["i_obso_faddr", 0x70, 4, "fragment address (obsolete)"],
  ["l_i_blocks_high", 0x74, 2, "i_blocks, bits 32-47"],
  ["l_i_file_acl_high", 0x76, 2, "xattr block, high 16 bits"],
  ["l_i_uid_high", 0x78, 2, "uid, high 16 bits"],
  ["l_i_gid_high", 0x7a, 2, "gid, high 16 bits"],
  ["l_i_checksum_lo", 0x7c, 2, "crc32c(seed, ino, gen, inode) low 16"],
  ["l_i_reserved", 0x7e, 2, "unused"],
  ["i_extra_isize", 0x80, 2, "bytes of extra fields used beyond 128"],
  ["i_checksum_hi", 0x82, 2, "inode checksum high 16"],
  ["i_ctime_extra", 0x84, 4, "ctime epoch bits and nanoseconds"],
  ["i_mtime_extra", 0x88, 4, "mtime epoch bits and nanoseconds"],
  ["i_atime_extra", 0x8c, 4, "atime epoch bits and nanoseconds"],
  ["i_crtime", 0x90, 4, "creation time"],
  ["i_crtime_extra", 0x94, 4, "crtime epoch bits and nanoseconds"],
  ["i_version_hi", 0x98, 4, "version, high 32 bits"],
  ["i_projid", 0x9c, 4, "project id"],
  ["i_xattr_space", 0xa0, 96, "in-inode xattrs: magic, entries, values"],
]);

/** Offset where in-inode xattrs begin: 128 + i_extra_isize. */
export const INODE_XATTR_OFFSET = 0xa0;
