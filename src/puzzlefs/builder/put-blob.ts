/**
 * `put_blob` for chunk data (spec §3.5): what bytes are stored, whether they
 * are marked compressed, and which fs-verity digest goes into fsVerityData.
 *
 *   noop   stored = data, verity = fs-verity(data)
 *   zstd   Z = seekable(data) (§3.6); stored = Z only if strictly smaller,
 *          else data; `compressed` says which; verity = fs-verity(Z) even
 *          when the raw bytes were stored. That last point is upstream's bug
 *          (§8: such chunks fail `mount -d`), kept because fsVerityData is
 *          part of the rootfs and so of every digest a build prints.
 *
 * The blob store names the blob by the sha256 of the stored bytes, keeps an
 * existing blob after re-hashing it, and writes new ones atomically.
 * Pure CPU work plus one `BlobStore.put`, so it runs the same on the main
 * thread and in the chunk workers (chunk-pool.ts).
 */
import type { BlobStore } from "../../oci/blobs.ts";
import { compressSeekable } from "../compression/seekable-encode.ts";
import { fsVerityDigest } from "../verity.ts";

export const Compression = { NOOP: "noop", ZSTD: "zstd" } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export interface EncodedBlob {
  /** The bytes written to blobs/sha256/<sha256(stored)>. */
  stored: Uint8Array;
  compressed: boolean;
  /** 32-byte fs-verity digest for fsVerityData (of the compressed form; see above). */
  verity: Uint8Array;
}

export function encodeBlob(data: Uint8Array, compression: Compression): EncodedBlob {
  if (compression === Compression.NOOP) return { stored: data, compressed: false, verity: fsVerityDigest(data) };
  const z = compressSeekable(data);
  const compressed = z.length < data.length;
  return { stored: compressed ? z : data, compressed, verity: fsVerityDigest(z) };
}

export interface StoredBlob {
  /** sha256 of the stored bytes, hex. */
  hex: string;
  /** Stored length (the descriptor size). */
  size: number;
  compressed: boolean;
  verity: Uint8Array;
  /** The blob was already in the store (not written by this call). */
  existed: boolean;
}

/** Encode and store one chunk (blocking I/O: see BlobStore.putSync). */
export function putBlob(store: BlobStore, data: Uint8Array, compression: Compression): StoredBlob {
  const e = encodeBlob(data, compression);
  const { hex, size, existed } = store.putSync(e.stored);
  return { hex, size, compressed: e.compressed, verity: e.verity, existed };
}
