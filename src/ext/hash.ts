/**
 * Hashes the on-disk format depends on (not checksums: see csum.ts).
 *
 * - Directory index hashes (directory.rst "dirhash"): half-MD4 and TEA over
 *   the name, seeded by s_hash_seed, each in a signed-char and an
 *   unsigned-char variant; the variant is chosen by s_flags. Stored hashes
 *   have bit 0 clear (bit 0 of a dx_entry hash marks a collision run).
 * - Extended attribute entry and block hashes (attributes.rst), name bytes
 *   taken as unsigned chars as the kernel does since 6.2 (e2fsck accepts
 *   both variants since 1.46.6).
 */
import { DX_HASH } from "./constants.ts";

const DEFAULT_SEED = Uint32Array.of(0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476);

/** Pack up to num*4 name bytes into u32 words, padding with the length (e2fsprogs str2hashbuf semantics). */
function str2hashbuf(msg: Uint8Array, off: number, len: number, out: Uint32Array, num: number, unsigned: boolean): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  if (len > num * 4) len = num * 4;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const b = msg[off + i]!;
    const c = unsigned ? b : (b << 24) >> 24;
    val = ((val << 8) + c) >>> 0;
    if (i % 4 === 3) {
      out[o++] = val;
      val = pad;
      num--;
    }
  }
  if (--num >= 0) out[o++] = val;
  while (--num >= 0) out[o++] = pad;
}

const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

/**
 * The cut-down MD4 transform of the htree hash: three rounds of eight
 * steps, F = selection, G = majority, H = parity (written out so V8 keeps
 * everything in registers; planning hashes every name of large directories).
 */
function halfMD4Transform(buf: Uint32Array, m: Uint32Array): void {
  let a = buf[0]! | 0, b = buf[1]! | 0, c = buf[2]! | 0, d = buf[3]! | 0, t = 0;
  const m0 = m[0]! | 0, m1 = m[1]! | 0, m2 = m[2]! | 0, m3 = m[3]! | 0, m4 = m[4]! | 0, m5 = m[5]! | 0, m6 = m[6]! | 0, m7 = m[7]! | 0;
  // Round 1: F(x, y, z) = z ^ (x & (y ^ z))
  t = (a + (d ^ (b & (c ^ d))) + m0) | 0; a = (t << 3) | (t >>> 29);
  t = (d + (c ^ (a & (b ^ c))) + m1) | 0; d = (t << 7) | (t >>> 25);
  t = (c + (b ^ (d & (a ^ b))) + m2) | 0; c = (t << 11) | (t >>> 21);
  t = (b + (a ^ (c & (d ^ a))) + m3) | 0; b = (t << 19) | (t >>> 13);
  t = (a + (d ^ (b & (c ^ d))) + m4) | 0; a = (t << 3) | (t >>> 29);
  t = (d + (c ^ (a & (b ^ c))) + m5) | 0; d = (t << 7) | (t >>> 25);
  t = (c + (b ^ (d & (a ^ b))) + m6) | 0; c = (t << 11) | (t >>> 21);
  t = (b + (a ^ (c & (d ^ a))) + m7) | 0; b = (t << 19) | (t >>> 13);
  // Round 2: G(x, y, z) = (x & y) + ((x ^ y) & z)
  t = (a + ((b & c) + ((b ^ c) & d)) + m1 + K2) | 0; a = (t << 3) | (t >>> 29);
  t = (d + ((a & b) + ((a ^ b) & c)) + m3 + K2) | 0; d = (t << 5) | (t >>> 27);
  t = (c + ((d & a) + ((d ^ a) & b)) + m5 + K2) | 0; c = (t << 9) | (t >>> 23);
  t = (b + ((c & d) + ((c ^ d) & a)) + m7 + K2) | 0; b = (t << 13) | (t >>> 19);
  t = (a + ((b & c) + ((b ^ c) & d)) + m0 + K2) | 0; a = (t << 3) | (t >>> 29);
  t = (d + ((a & b) + ((a ^ b) & c)) + m2 + K2) | 0; d = (t << 5) | (t >>> 27);
  t = (c + ((d & a) + ((d ^ a) & b)) + m4 + K2) | 0; c = (t << 9) | (t >>> 23);
  t = (b + ((c & d) + ((c ^ d) & a)) + m6 + K2) | 0; b = (t << 13) | (t >>> 19);
  // Round 3: H(x, y, z) = x ^ y ^ z
  t = (a + (b ^ c ^ d) + m3 + K3) | 0; a = (t << 3) | (t >>> 29);
  t = (d + (a ^ b ^ c) + m7 + K3) | 0; d = (t << 9) | (t >>> 23);
  t = (c + (d ^ a ^ b) + m2 + K3) | 0; c = (t << 11) | (t >>> 21);
  t = (b + (c ^ d ^ a) + m6 + K3) | 0; b = (t << 15) | (t >>> 17);
  t = (a + (b ^ c ^ d) + m1 + K3) | 0; a = (t << 3) | (t >>> 29);
  t = (d + (a ^ b ^ c) + m5 + K3) | 0; d = (t << 9) | (t >>> 23);
  t = (c + (d ^ a ^ b) + m0 + K3) | 0; c = (t << 11) | (t >>> 21);
  t = (b + (c ^ d ^ a) + m4 + K3) | 0; b = (t << 15) | (t >>> 17);
  buf[0] = buf[0]! + a;
  buf[1] = buf[1]! + b;
  buf[2] = buf[2]! + c;
  buf[3] = buf[3]! + d;
}

/** TEA in a Davies-Meyer construction, 16 rounds. */
function teaTransform(buf: Uint32Array, m: Uint32Array): void {
  let sum = 0;
  let b0 = buf[0]!, b1 = buf[1]!;
  const a = m[0]!, b = m[1]!, c = m[2]!, d = m[3]!;
  for (let n = 0; n < 16; n++) {
    sum = (sum + 0x9e3779b9) | 0;
    b0 = (b0 + ((((b1 << 4) + a) | 0) ^ ((b1 + sum) | 0) ^ (((b1 >>> 5) + b) | 0))) | 0;
    b1 = (b1 + ((((b0 << 4) + c) | 0) ^ ((b0 + sum) | 0) ^ (((b0 >>> 5) + d) | 0))) | 0;
  }
  buf[0] = buf[0]! + b0;
  buf[1] = buf[1]! + b1;
}

export interface DirHash {
  hash: number;
  minor: number;
}

/**
 * The htree hash of `name` for a DX_HASH version (HALF_MD4, TEA or their
 * _UNSIGNED variants). `seed` is s_hash_seed as four little-endian u32; an
 * all-zero seed means the default one. Returns hash with bit 0 cleared.
 */
export function dirHash(version: number, name: Uint8Array, seed: Uint32Array): DirHash {
  const hash = dirHashOnly(version, name, seed);
  return { hash, minor: SCRATCH_MINOR[0]! };
}

/** dirHash without the object: the major hash; the minor stays in SCRATCH_MINOR. */
export function dirHashOnly(version: number, name: Uint8Array, seed: Uint32Array): number {
  const buf = SCRATCH_BUF;
  buf.set(seed[0] || seed[1] || seed[2] || seed[3] ? seed : DEFAULT_SEED);
  const m = SCRATCH_M;
  let hash: number;
  let minor: number;
  switch (version) {
    case DX_HASH.HALF_MD4:
    case DX_HASH.HALF_MD4_UNSIGNED: {
      const uns = version === DX_HASH.HALF_MD4_UNSIGNED;
      for (let off = 0, len = name.length; len > 0; len -= 32, off += 32) {
        str2hashbuf(name, off, len, m, 8, uns);
        halfMD4Transform(buf, m);
      }
      hash = buf[1]!;
      minor = buf[2]!;
      break;
    }
    case DX_HASH.TEA:
    case DX_HASH.TEA_UNSIGNED: {
      const uns = version === DX_HASH.TEA_UNSIGNED;
      for (let off = 0, len = name.length; len > 0; len -= 16, off += 16) {
        str2hashbuf(name, off, len, m, 4, uns);
        teaTransform(buf, m);
      }
      hash = buf[0]!;
      minor = buf[1]!;
      break;
    }
    default:
      throw new RangeError(`dirHash: unsupported hash version ${version}`);
  }
  SCRATCH_MINOR[0] = minor;
  return (hash & ~1) >>> 0;
}

const SCRATCH_MINOR = new Uint32Array(1);
const SCRATCH_BUF = new Uint32Array(4);
const SCRATCH_M = new Uint32Array(8);

/** Hash of one xattr entry: name suffix bytes, then the value as zero-padded le32 words. */
export function xattrEntryHash(name: Uint8Array, value: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = ((h << 5) ^ (h >>> 27) ^ name[i]!) >>> 0;
  for (let i = 0; i < value.length; i += 4) {
    const w = (value[i]! | ((value[i + 1] ?? 0) << 8) | ((value[i + 2] ?? 0) << 16) | ((value[i + 3] ?? 0) << 24)) >>> 0;
    h = ((h << 16) ^ (h >>> 16) ^ w) >>> 0;
  }
  return h;
}

/** h_hash of an xattr block from its entries' hashes (0 if any entry hash is 0). */
export function xattrBlockHash(entryHashes: readonly number[]): number {
  let h = 0;
  for (const e of entryHashes) {
    if (e === 0) return 0;
    h = ((h << 16) ^ (h >>> 16) ^ e) >>> 0;
  }
  return h;
}
