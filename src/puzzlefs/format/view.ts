/**
 * Zero-copy accessors for the PuzzleFS rootfs schema (spec §2.2) on top of
 * the bounded Cap'n Proto reader. The reader keeps one RootfsView for the
 * life of an image and materializes only what it is asked for; decode.ts
 * builds the full domain value from the same accessors.
 *
 * Field locations (bytes into the data section / pointer index), from
 * `capnp compile -ocapnp schemas/metadata.capnp`:
 *   Rootfs        manifestVersion u64@0; p0 metadatas; p1 fsVerityData
 *   InodeVector   p0 inodes
 *   Inode         ino u64@0; mode tag u16@8; permissions u16@10; uid u32@12; gid u32@16; p0 mode payload; p1 additional
 *   Chr, Blk      major u64@0; minor u64@8
 *   Dir           lookBelow bit 0; p0 entries      DirEntry   ino u64@0; p0 name
 *   FileChunk     len u64@0; p0 blob               BlobRef    offset u64@0; compressed bit 64; p0 digest
 *   InodeAdditional p0 xattrs; p1 symlinkTarget    Xattr      p0 key; p1 val
 *   VerityData    p0 digest; p1 verity
 */
import { PfsError } from "../../common/errors.ts";
import { CapnpMessage, type CapnpLimits, type StructListRef, type StructRef } from "./capnp.ts";

export const INODE = { INO: 0, TAG: 8, PERMISSIONS: 10, UID: 12, GID: 16, P_MODE: 0, P_ADDITIONAL: 1 } as const;

const EMPTY = new Uint8Array(0);

export class RootfsView {
  readonly msg: CapnpMessage;
  readonly root: StructRef;
  readonly manifestVersion: bigint;
  /** Inode list of each layer; index 0 is the top layer. A null list reads as empty (count 0). */
  readonly layers: StructListRef[];

  constructor(bytes: Uint8Array, name: string, limits: CapnpLimits = {}) {
    const msg = new CapnpMessage(bytes, name, limits);
    this.msg = msg;
    const root = msg.root("Rootfs");
    if (!root) throw PfsError.format(`${name}`, "empty message: no Rootfs", { offset: 0 });
    this.root = root;
    this.manifestVersion = msg.u64(root, 0);
    const metas = msg.structList(root.seg, msg.ptr(root, 0), root.depth, "Rootfs.metadatas");
    this.layers = [];
    for (let i = 0; metas && i < metas.count; i++) {
      const iv = msg.element(metas, i);
      const inodes = msg.structList(iv.seg, msg.ptr(iv, 0), iv.depth, "InodeVector.inodes");
      this.layers.push(inodes ?? { seg: 0, start: 0, count: 0, stride: 0, dataBytes: 0, ptrCount: 0, depth: iv.depth + 1 });
    }
  }

  get name(): string {
    return this.msg.name;
  }

  /** Inode i of a layer. */
  inode(layer: number, i: number): StructRef {
    return this.msg.element(this.layers[layer]!, i);
  }

  /** Compare inode i of `layer` with (hi, lo): <0, 0, >0. No allocation (used by binary search). */
  compareIno(layer: number, i: number, hi: number, lo: number): number {
    const l = this.layers[layer]!;
    if (l.dataBytes < 8) return hi === 0 && lo === 0 ? 0 : -1; // ino field absent: reads as 0
    const p = l.start + i * l.stride;
    const h = this.msg.dv.getUint32(p + 4, true);
    if (h !== hi) return h < hi ? -1 : 1;
    const w = this.msg.dv.getUint32(p, true);
    return w === lo ? 0 : w < lo ? -1 : 1;
  }

  /** Mode tag of inode i of `layer` without allocating. */
  tagAt(layer: number, i: number): number {
    const l = this.layers[layer]!;
    return l.dataBytes >= INODE.TAG + 2 ? this.msg.dv.getUint16(l.start + i * l.stride + INODE.TAG, true) : 0;
  }

  ino(s: StructRef): bigint {
    return this.msg.u64(s, INODE.INO);
  }

  /** ino as a number, or -1 beyond 2^53-1. */
  inoNum(s: StructRef): number {
    return this.msg.u64n(s, INODE.INO);
  }

  modeTag(s: StructRef): number {
    return this.msg.u16(s, INODE.TAG);
  }

  permissions(s: StructRef): number {
    return this.msg.u16(s, INODE.PERMISSIONS);
  }

  uid(s: StructRef): number {
    return this.msg.u32(s, INODE.UID);
  }

  gid(s: StructRef): number {
    return this.msg.u32(s, INODE.GID);
  }

  /** chr/blk payload: major, minor. */
  device(s: StructRef): { major: bigint; minor: bigint } {
    const d = this.msg.struct(s.seg, this.msg.ptr(s, INODE.P_MODE), s.depth, "Inode.mode.chr/blk");
    return d ? { major: this.msg.u64(d, 0), minor: this.msg.u64(d, 8) } : { major: 0n, minor: 0n };
  }

  /** dir payload: entry list (null = empty) and lookBelow. */
  dir(s: StructRef): { entries: StructListRef | null; lookBelow: boolean } {
    const d = this.msg.struct(s.seg, this.msg.ptr(s, INODE.P_MODE), s.depth, "Inode.mode.dir");
    if (!d) return { entries: null, lookBelow: false };
    return { entries: this.msg.structList(d.seg, this.msg.ptr(d, 0), d.depth, "Dir.entries"), lookBelow: this.msg.bit(d, 0) };
  }

  dirEntryName(e: StructRef): Uint8Array {
    return this.msg.data(e.seg, this.msg.ptr(e, 0), e.depth, "DirEntry.name") ?? EMPTY;
  }

  /** file payload: the chunk list (null = empty file). */
  fileChunks(s: StructRef): StructListRef | null {
    return this.msg.structList(s.seg, this.msg.ptr(s, INODE.P_MODE), s.depth, "Inode.mode.file");
  }

  chunkLen(c: StructRef): bigint {
    return this.msg.u64(c, 0);
  }

  /** BlobRef of a FileChunk (a null blob reads as the default: empty digest, offset 0, uncompressed). */
  chunkBlob(c: StructRef): { digest: Uint8Array; offset: bigint; compressed: boolean; ref: StructRef | null } {
    const b = this.msg.struct(c.seg, this.msg.ptr(c, 0), c.depth, "FileChunk.blob");
    if (!b) return { digest: EMPTY, offset: 0n, compressed: false, ref: null };
    return {
      digest: this.msg.data(b.seg, this.msg.ptr(b, 0), b.depth, "BlobRef.digest") ?? EMPTY,
      offset: this.msg.u64(b, 0),
      compressed: this.msg.bit(b, 64),
      ref: b,
    };
  }

  additional(s: StructRef): StructRef | null {
    return this.msg.struct(s.seg, this.msg.ptr(s, INODE.P_ADDITIONAL), s.depth, "Inode.additional");
  }

  xattrList(a: StructRef): StructListRef | null {
    return this.msg.structList(a.seg, this.msg.ptr(a, 0), a.depth, "InodeAdditional.xattrs");
  }

  /** The two Data pointers of an Xattr or VerityData element. */
  pair(x: StructRef, what: string): [Uint8Array, Uint8Array] {
    return [this.msg.data(x.seg, this.msg.ptr(x, 0), x.depth, what) ?? EMPTY, this.msg.data(x.seg, this.msg.ptr(x, 1), x.depth, what) ?? EMPTY];
  }

  symlinkTarget(a: StructRef): Uint8Array | null {
    return this.msg.data(a.seg, this.msg.ptr(a, 1), a.depth, "InodeAdditional.symlinkTarget");
  }

  verityList(): StructListRef | null {
    return this.msg.structList(this.root.seg, this.msg.ptr(this.root, 1), this.root.depth, "Rootfs.fsVerityData");
  }
}
