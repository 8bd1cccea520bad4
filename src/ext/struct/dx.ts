/**
 * htree index blocks (directory.rst "Hash Tree Directories"): dx_root in
 * the directory's block 0 (after '.' and '..'), dx_node blocks for a second
 * index level, 8-byte dx_entry records, and the metadata_csum dx_tail. The
 * count/limit pair overlays the hash of entry 0, whose hash is implicitly 0.
 */
import { defineStruct, StructView } from "./field.ts";

export const DX_ROOT = defineStruct("dx_root", 0x28, [
  ["dot_inode", 0x00, 4, "this directory"],
  ["dot_rec_len", 0x04, 2, "12"],
  ["dot_name_len", 0x06, 1, "1"],
  ["dot_file_type", 0x07, 1, "FT_DIR"],
  ["dot_name", 0x08, 4, "'.' padded with NULs"],
  ["dotdot_inode", 0x0c, 4, "parent directory"],
  ["dotdot_rec_len", 0x10, 2, "block size - 12: hides the index"],
  ["dotdot_name_len", 0x12, 1, "2"],
  ["dotdot_file_type", 0x13, 1, "FT_DIR"],
  ["dotdot_name", 0x14, 4, "'..' padded with NULs"],
  ["reserved_zero", 0x18, 4, "0"],
  ["hash_version", 0x1c, 1, "DX_HASH_* (unsigned variant chosen by s_flags)"],
  ["info_length", 0x1d, 1, "8"],
  ["indirect_levels", 0x1e, 1, "0: entries point at leaves; 1: at dx_nodes"],
  ["unused_flags", 0x1f, 1, "0"],
  ["limit", 0x20, 2, "capacity in dx_entries (including this header)"],
  ["count", 0x22, 2, "dx_entries used (including this header)"],
  ["block", 0x24, 4, "directory block for hashes below entries[1]"],
]);

export const DX_NODE = defineStruct("dx_node", 0x10, [
  ["fake_inode", 0x0, 4, "0: looks like an empty dirent"],
  ["fake_rec_len", 0x4, 2, "block size"],
  ["name_len", 0x6, 1, "0"],
  ["file_type", 0x7, 1, "0"],
  ["limit", 0x8, 2, "capacity in dx_entries (including this header)"],
  ["count", 0xa, 2, "dx_entries used (including this header)"],
  ["block", 0xc, 4, "directory block for hashes below entries[1]"],
]);

export const DX_ENTRY = defineStruct("dx_entry", 8, [
  ["hash", 0x0, 4, "lowest hash in the subtree (bit 0: continues a collision)"],
  ["block", 0x4, 4, "directory block of the subtree"],
]);

export const DX_TAIL = defineStruct("dx_tail", 8, [
  ["dt_reserved", 0x0, 4, "0"],
  ["dt_checksum", 0x4, 4, "crc32c(seed, ino, gen, used entries, tail)"],
]);

/** Offset of the count/limit pair in a dx_root and a dx_node block. */
export const DX_ROOT_COUNT_OFFSET = 0x20;
export const DX_NODE_COUNT_OFFSET = 0x8;

/** dx_entries that fit before the dx_tail: 507 in a root, 510 in a node (4 KiB). */
export function dxLimit(blockSize: number, countOffset: number): number {
  return Math.floor((blockSize - countOffset - DX_TAIL.size) / DX_ENTRY.size);
}

/**
 * Write `count` dx_entries (entry 0 carries only a block: its hash slot
 * holds limit/count) and the zeroed tail. `hashAt(i)`/`blockAt(i)` give
 * entry i. The checksum is set by csum.setDxCsum.
 */
export function writeDxEntries(
  buf: Uint8Array,
  countOffset: number,
  count: number,
  hashAt: (i: number) => number,
  blockAt: (i: number) => number,
): void {
  const limit = dxLimit(buf.length, countOffset);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  dv.setUint16(countOffset, limit, true);
  dv.setUint16(countOffset + 2, count, true);
  dv.setUint32(countOffset + 4, blockAt(0), true);
  for (let i = 1; i < count; i++) {
    const at = countOffset + i * DX_ENTRY.size;
    dv.setUint32(at, hashAt(i) >>> 0, true);
    dv.setUint32(at + 4, blockAt(i), true);
  }
  buf.fill(0, countOffset + limit * DX_ENTRY.size);
}

export function writeDxRootHeader(buf: Uint8Array, self: number, parent: number, hashVersion: number, levels: number): void {
  const v = new StructView(DX_ROOT, buf);
  v.set("dot_inode", self).set("dot_rec_len", 12).set("dot_name_len", 1).set("dot_file_type", 2);
  v.setBytes("dot_name", Uint8Array.of(0x2e, 0, 0, 0));
  v.set("dotdot_inode", parent).set("dotdot_rec_len", buf.length - 12).set("dotdot_name_len", 2).set("dotdot_file_type", 2);
  v.setBytes("dotdot_name", Uint8Array.of(0x2e, 0x2e, 0, 0));
  v.set("reserved_zero", 0).set("hash_version", hashVersion).set("info_length", 8).set("indirect_levels", levels).set("unused_flags", 0);
}

export function writeDxNodeHeader(buf: Uint8Array): void {
  new StructView(DX_NODE, buf).set("fake_inode", 0).set("fake_rec_len", buf.length).set("name_len", 0).set("file_type", 0);
}
