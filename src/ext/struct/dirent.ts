/**
 * struct ext4_dir_entry_2 and the metadata_csum leaf tail
 * struct ext4_dir_entry_tail (directory.rst). A dirent is an 8-byte header
 * plus the name, padded to 4 bytes; the last one in a block stretches its
 * rec_len to the tail.
 */
import { defineStruct, StructView } from "./field.ts";

export const DIRENT = defineStruct("ext4_dir_entry_2", 8, [
  ["inode", 0x0, 4, "inode number (0 = unused)"],
  ["rec_len", 0x4, 2, "length of this record, multiple of 4"],
  ["name_len", 0x6, 1, "name length"],
  ["file_type", 0x7, 1, "FT_* (filetype feature)"],
]);

export const DIRENT_TAIL = defineStruct("ext4_dir_entry_tail", 12, [
  ["det_reserved_zero1", 0x0, 4, "inode: must be 0"],
  ["det_rec_len", 0x4, 2, "12"],
  ["det_reserved_zero2", 0x6, 1, "name_len: must be 0"],
  ["det_reserved_ft", 0x7, 1, "0xDE"],
  ["det_checksum", 0x8, 4, "crc32c(seed, ino, gen, block up to the tail)"],
]);

export const DIRENT_TAIL_FT = 0xde;

/** Bytes a dirent with a name of `nameLen` bytes occupies (EXT4_DIR_REC_LEN). */
export function direntLen(nameLen: number): number {
  return (DIRENT.size + nameLen + 3) & ~3;
}

export function writeDirent(buf: Uint8Array, off: number, ino: number, recLen: number, name: Uint8Array, fileType: number): void {
  new StructView(DIRENT, buf, off).set("inode", ino).set("rec_len", recLen).set("name_len", name.length).set("file_type", fileType);
  buf.set(name, off + DIRENT.size);
}

/** The 12-byte fake dirent at the end of a 4 KiB leaf; checksum set later. */
export function writeDirentTail(buf: Uint8Array, blockSize: number): void {
  const off = blockSize - DIRENT_TAIL.size;
  buf.fill(0, off, blockSize);
  new StructView(DIRENT_TAIL, buf, off).set("det_rec_len", DIRENT_TAIL.size).set("det_reserved_ft", DIRENT_TAIL_FT);
}
