/**
 * fs-verity file digest (spec §3.7): SHA-256, 4096-byte blocks, no salt, the
 * value `fsverity digest --hash-alg=sha256 --block-size=4096` prints and the
 * kernel measures. Used for the rootfs annotation, the manifest digest that
 * `build` prints / `--digest` pins, and every chunk's `fsVerityData` entry.
 */
import { createHash } from "node:crypto";
import { nativeFsVerity } from "./native.ts";

const BLOCK = 4096;
const HASH = 32;
const ZERO_BLOCK = new Uint8Array(BLOCK);

function hashBlock(block: Uint8Array): Buffer {
  const h = createHash("sha256").update(block);
  if (block.length < BLOCK) h.update(ZERO_BLOCK.subarray(block.length));
  return h.digest();
}

/** Merkle tree root: 32 zero bytes for empty input. */
export function fsVerityRoot(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(HASH);
  let level = Buffer.allocUnsafe(Math.ceil(data.length / BLOCK) * HASH);
  for (let i = 0, o = 0; i < data.length; i += BLOCK, o += HASH) {
    hashBlock(data.subarray(i, Math.min(i + BLOCK, data.length))).copy(level, o);
  }
  while (level.length > HASH) {
    const next = Buffer.allocUnsafe(Math.ceil(level.length / BLOCK) * HASH);
    for (let i = 0, o = 0; i < level.length; i += BLOCK, o += HASH) {
      hashBlock(level.subarray(i, Math.min(i + BLOCK, level.length))).copy(next, o);
    }
    level = next;
  }
  return new Uint8Array(level);
}

/** The 256-byte fs-verity descriptor hashed into the digest (spec §3.7). */
export function fsVerityDescriptor(size: number, root: Uint8Array): Uint8Array {
  const d = new Uint8Array(256);
  const dv = new DataView(d.buffer);
  d[0] = 1; // version
  d[1] = 1; // FS_VERITY_HASH_ALG_SHA256
  d[2] = 12; // log2(4096)
  d[3] = 0; // salt size
  dv.setBigUint64(8, BigInt(size), true);
  d.set(root, 16); // root_hash[64], zero-padded; salt[32] and reserved[144] stay zero
  return d;
}

/** The reference implementation in JS (one Hash object per 4 KiB block). */
export function fsVerityDigestJs(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(fsVerityDescriptor(data.length, fsVerityRoot(data))).digest());
}

let native: ((data: Uint8Array) => Uint8Array) | null | undefined;

/** The digest: from the native addon when it is available (same bytes, ≈1.5× faster), else fsVerityDigestJs. */
export function fsVerityDigest(data: Uint8Array): Uint8Array {
  if (native === undefined) native = nativeFsVerity();
  return native ? native(data) : fsVerityDigestJs(data);
}

export function fsVerityHex(data: Uint8Array): string {
  return Buffer.from(fsVerityDigest(data)).toString("hex");
}
