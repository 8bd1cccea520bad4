/**
 * Extended attribute storage (attributes.rst): a 4-byte magic in the inode
 * body after i_extra_isize, or a 32-byte header at the start of an xattr
 * block; then 16-byte entry headers each followed by the name suffix
 * (padded to 4), a 4-byte zero terminator, and values packed at the end of
 * the space. Value offsets count from the first entry (inode body) or from
 * the block start (block).
 */
import { defineStruct, StructView } from "./field.ts";
import { xattrEntryHash, xattrBlockHash } from "../hash.ts";

export const XATTR_IBODY_HEADER = defineStruct("ext4_xattr_ibody_header", 4, [["h_magic", 0x0, 4, "0xEA020000"]]);

export const XATTR_HEADER = defineStruct("ext4_xattr_header", 32, [
  ["h_magic", 0x00, 4, "0xEA020000"],
  ["h_refcount", 0x04, 4, "inodes sharing this block"],
  ["h_blocks", 0x08, 4, "1"],
  ["h_hash", 0x0c, 4, "hash over all entry hashes"],
  ["h_checksum", 0x10, 4, "crc32c(seed, le64 block number, block)"],
  ["h_reserved", 0x14, 12, "zero"],
]);

export const XATTR_ENTRY = defineStruct("ext4_xattr_entry", 16, [
  ["e_name_len", 0x0, 1, "name suffix length"],
  ["e_name_index", 0x1, 1, "namespace prefix index (1 user., 4 trusted., 6 security., ...)"],
  ["e_value_offs", 0x2, 2, "value offset (see module comment)"],
  ["e_value_inum", 0x4, 4, "0: value stored here (no ea_inode)"],
  ["e_value_size", 0x8, 4, "value length"],
  ["e_hash", 0xc, 4, "hash of name and value"],
]);

export const XATTR_MAGIC = 0xea020000;

/** One attribute as stored: namespace index, name suffix, value. */
export interface XattrRecord {
  index: number;
  name: Uint8Array;
  value: Uint8Array;
}

export const xattrEntryLen = (nameLen: number): number => (XATTR_ENTRY.size + nameLen + 3) & ~3;
export const xattrValueLen = (size: number): number => (size + 3) & ~3;

/** Bytes a set of records needs: entries + 4-byte terminator + values. */
export function xattrSpace(recs: readonly XattrRecord[]): number {
  let n = 4;
  for (const r of recs) n += xattrEntryLen(r.name.length) + xattrValueLen(r.value.length);
  return n;
}

/**
 * Write entries at `entriesOff` and values downward from `end`, both inside
 * `buf`; value offsets are relative to `offsBase`. Returns the entry hashes.
 */
function writeRecords(buf: Uint8Array, entriesOff: number, end: number, offsBase: number, recs: readonly XattrRecord[]): number[] {
  const hashes: number[] = [];
  let e = entriesOff;
  let v = end;
  for (const r of recs) {
    const h = xattrEntryHash(r.name, r.value);
    let valueOffs = 0;
    if (r.value.length > 0) {
      v -= xattrValueLen(r.value.length);
      buf.set(r.value, v);
      valueOffs = v - offsBase;
    }
    new StructView(XATTR_ENTRY, buf, e)
      .set("e_name_len", r.name.length)
      .set("e_name_index", r.index)
      .set("e_value_offs", valueOffs)
      .set("e_value_inum", 0)
      .set("e_value_size", r.value.length)
      .set("e_hash", h);
    buf.set(r.name, e + XATTR_ENTRY.size);
    e += xattrEntryLen(r.name.length);
    hashes.push(h);
  }
  if (e + 4 > v) throw new RangeError(`xattrs overflow their space (${e + 4 - v} bytes too many)`);
  return hashes;
}

/** In-inode xattrs into `area` (the bytes after i_extra_isize), zero-filled by the caller. */
export function encodeIbodyXattrs(area: Uint8Array, recs: readonly XattrRecord[]): void {
  new StructView(XATTR_IBODY_HEADER, area).set("h_magic", XATTR_MAGIC);
  writeRecords(area, XATTR_IBODY_HEADER.size, area.length, XATTR_IBODY_HEADER.size, recs);
}

/** A whole xattr block (zero-filled by the caller); the checksum is set by csum.setXattrBlockCsum. */
export function encodeXattrBlock(block: Uint8Array, recs: readonly XattrRecord[], refcount: number): void {
  const hashes = writeRecords(block, XATTR_HEADER.size, block.length, 0, recs);
  new StructView(XATTR_HEADER, block)
    .set("h_magic", XATTR_MAGIC)
    .set("h_refcount", refcount)
    .set("h_blocks", 1)
    .set("h_hash", xattrBlockHash(hashes))
    .set("h_checksum", 0);
}
