/**
 * Domain types of the PuzzleFS rootfs (spec §2.2–2.3), independent of any
 * Cap'n Proto library. The decoder produces them, the encoder consumes them,
 * and an encode → decode round trip is the identity. UInt64 fields are bigint
 * so that every value the schema allows survives exactly.
 */

export const MANIFEST_VERSION = 3n;

export interface BlobRef {
  /** 32-byte sha256 of the stored blob (its file name in blobs/sha256). */
  digest: Uint8Array;
  /** Offset into the blob's *uncompressed* content. */
  offset: bigint;
  /** The blob is zstd-seekable (spec §3.6). */
  compressed: boolean;
}

export interface FileChunk {
  blob: BlobRef;
  len: bigint;
}

export interface DirEntry {
  ino: bigint;
  /** Raw name bytes: no NUL, no '/', not '.' or '..'. */
  name: Uint8Array;
}

export interface Xattr {
  key: Uint8Array;
  val: Uint8Array;
}

export interface InodeAdditional {
  xattrs: Xattr[];
  symlinkTarget: Uint8Array | null;
}

/** `Inode.mode`, the schema's unnamed union; tag values are spec §2.2. */
export type InodeMode =
  | { kind: "unknown" }
  | { kind: "fifo" }
  | { kind: "chr"; major: bigint; minor: bigint }
  | { kind: "dir"; entries: DirEntry[]; lookBelow: boolean }
  | { kind: "blk"; major: bigint; minor: bigint }
  | { kind: "file"; chunks: FileChunk[] }
  | { kind: "lnk" }
  | { kind: "sock" }
  | { kind: "wht" };

export type InodeKind = InodeMode["kind"];

/** Union tag (u16 at bits 64–79 of Inode) for each kind. */
export const MODE_TAG = {
  unknown: 0,
  fifo: 1,
  chr: 2,
  dir: 3,
  blk: 4,
  file: 5,
  lnk: 6,
  sock: 7,
  wht: 8,
} as const satisfies Record<InodeKind, number>;

export interface Inode {
  ino: bigint;
  mode: InodeMode;
  uid: number;
  gid: number;
  /** st_mode & 0o7777 (setuid/setgid/sticky included, no type bits). */
  permissions: number;
  /** Present iff the inode has ≥ 1 xattr or is a symlink (spec §2.3). */
  additional: InodeAdditional | null;
}

export interface InodeVector {
  /** Sorted ascending by ino. */
  inodes: Inode[];
}

export interface VerityData {
  digest: Uint8Array;
  verity: Uint8Array;
}

export interface Rootfs {
  /** Layers; index 0 is the top (newest). */
  metadatas: InodeVector[];
  /** Sorted ascending by digest bytes, unique. */
  fsVerityData: VerityData[];
  manifestVersion: bigint;
}
