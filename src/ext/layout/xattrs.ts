/**
 * Mapping PuzzleFS xattrs (full names, VFS values) to ext4 records
 * (attributes.rst): the name prefix becomes an index, POSIX ACLs are
 * converted from the VFS xattr format to ext4's compact disk format, and
 * records are sorted by (index, name length, name) as the kernel requires
 * in xattr blocks. Then each inode's set goes into the inode body when it
 * fits, else into one xattr block shared by all inodes with the same set.
 */
import { PfsError, ErrorCode } from "../../common/errors.ts";
import type { TreeXattr } from "../../puzzlefs/tree.ts";
import { GEOM } from "../constants.ts";
import { grow } from "./arrays.ts";
import { INODE, INODE_XATTR_OFFSET } from "../struct/inode.ts";
import { XATTR_HEADER, XATTR_IBODY_HEADER, xattrSpace, type XattrRecord } from "../struct/xattr.ts";

/** Prefix → e_name_index, longest prefixes first (attributes.rst "Attribute Name Indices"). */
const PREFIXES: ReadonlyArray<readonly [string, number]> = [
  ["system.posix_acl_access", 2],
  ["system.posix_acl_default", 3],
  ["user.", 1],
  ["trusted.", 4],
  ["security.", 6],
];
const ACL_INDEXES = new Set([2, 3]);

/** Bytes available for in-inode xattrs: after i_extra_isize, minus the magic. */
export const IBODY_SPACE = INODE.size - INODE_XATTR_OFFSET - XATTR_IBODY_HEADER.size;
/** Bytes available in an xattr block after its header. */
export const BLOCK_SPACE = GEOM.BLOCK_SIZE - XATTR_HEADER.size;
/** The kernel stops sharing a block at this many references (EXT4_XATTR_REFCOUNT_MAX). */
export const XATTR_REFCOUNT_MAX = 1024;

const unsupported = (msg: string, hint?: string): PfsError => new PfsError(ErrorCode.UNSUPPORTED, msg, { hint });
const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");

/**
 * VFS ACL xattr (le32 version 2, then {le16 tag, le16 perm, le32 id}) →
 * ext4 ACL (le32 version 1, then 4-byte entries for USER_OBJ, GROUP_OBJ,
 * MASK, OTHER and 8-byte {tag, perm, id} entries for USER and GROUP).
 */
export function aclToDisk(v: Uint8Array, what: string): Uint8Array {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (v.length < 4 || (v.length - 4) % 8 !== 0 || dv.getUint32(0, true) !== 2) {
    throw unsupported(`${what}: not a POSIX ACL in the VFS xattr format (version 2)`);
  }
  const out: number[] = [1, 0, 0, 0];
  for (let at = 4; at < v.length; at += 8) {
    const tag = dv.getUint16(at, true);
    out.push(...v.subarray(at, at + 4));
    if (tag === 0x02 || tag === 0x08) out.push(...v.subarray(at + 4, at + 8)); // ACL_USER, ACL_GROUP carry an id
    else if (![0x01, 0x04, 0x10, 0x20].includes(tag)) throw unsupported(`${what}: unknown ACL tag 0x${tag.toString(16)}`);
  }
  return Uint8Array.from(out);
}

function toRecord(x: TreeXattr, what: string): XattrRecord {
  const full = latin1(x.key);
  for (const [prefix, index] of PREFIXES) {
    if (!full.startsWith(prefix)) continue;
    const name = x.key.subarray(prefix.length);
    if (ACL_INDEXES.has(index)) {
      if (name.length !== 0) continue; // e.g. "system.posix_acl_accessX" is not an ACL
      return { index, name, value: aclToDisk(x.value, `${what}: xattr ${full}`) };
    }
    if (name.length === 0) throw unsupported(`${what}: xattr name "${full}" has an empty suffix`);
    if (name.length > 255) throw unsupported(`${what}: xattr name "${full.slice(0, 40)}…" is longer than 255 bytes after its prefix`);
    return { index, name, value: x.value };
  }
  throw unsupported(
    `${what}: xattr "${full.slice(0, 60)}" is outside the namespaces ext4 stores (user., trusted., security., system.posix_acl_*)`,
    "remove the attribute from the image",
  );
}

function compareRecords(a: XattrRecord, b: XattrRecord): number {
  if (a.index !== b.index) return a.index - b.index;
  if (a.name.length !== b.name.length) return a.name.length - b.name.length;
  return Buffer.compare(a.name, b.name);
}

/** The records for a node's xattrs, sorted; refuses what ext4 cannot hold. */
export function canonicalXattrs(xattrs: readonly TreeXattr[], what: string): XattrRecord[] {
  const recs = xattrs.map((x) => toRecord(x, what)).sort(compareRecords);
  for (let i = 1; i < recs.length; i++) {
    if (compareRecords(recs[i - 1]!, recs[i]!) === 0) throw unsupported(`${what}: xattr "${latin1(recs[i]!.name)}" (namespace ${recs[i]!.index}) appears twice`);
  }
  return recs;
}

export const XATTR_NONE = 0;
export const XATTR_IBODY = 1;
export const XATTR_BLOCK = 2;

/** Where a record set goes: nowhere, the inode body, or a block. */
export function xattrPlacement(recs: readonly XattrRecord[], what: string): number {
  if (recs.length === 0) return XATTR_NONE;
  const space = xattrSpace(recs);
  if (space <= IBODY_SPACE) return XATTR_IBODY;
  if (space <= BLOCK_SPACE) return XATTR_BLOCK;
  throw unsupported(`${what}: xattrs need ${space} bytes, more than one ${GEOM.BLOCK_SIZE}-byte block holds`, "shrink or drop large xattr values");
}

/** A byte-exact key of a record set, for sharing one block among identical sets. */
export function xattrKey(recs: readonly XattrRecord[]): string {
  let k = "";
  for (const r of recs) k += `${r.index}:${r.name.length}:${r.value.length}:${latin1(r.name)}${latin1(r.value)}|`;
  return k;
}

/** Shared xattr blocks: block i is rendered from inode owner[i]'s xattrs, with refcount[i]. */
export class XattrBlocks {
  owner = new Uint32Array(16);
  refcount = new Uint32Array(16);
  count = 0;
  private readonly byKey = new Map<string, number>();

  /** The 0-based block index inode `ino` uses for this record set. */
  assign(ino: number, recs: readonly XattrRecord[]): number {
    const key = xattrKey(recs);
    const have = this.byKey.get(key);
    if (have !== undefined && this.refcount[have]! < XATTR_REFCOUNT_MAX) {
      this.refcount[have]!++;
      return have;
    }
    if (this.count === this.owner.length) {
      this.owner = grow(this.owner);
      this.refcount = grow(this.refcount);
    }
    const i = this.count++;
    this.owner[i] = ino;
    this.refcount[i] = 1;
    this.byKey.set(key, i);
    return i;
  }

  /** Drop the sharing index once planning is done (keys are the biggest part). */
  seal(): void {
    this.byKey.clear();
  }
}

