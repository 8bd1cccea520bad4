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
const rotl = (x: number, s: number): number => (x << s) | (x >>> (32 - s));

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

const F = (x: number, y: number, z: number): number => z ^ (x & (y ^ z));
const G = (x: number, y: number, z: number): number => ((x & y) + ((x ^ y) & z)) | 0;
const H = (x: number, y: number, z: number): number => x ^ y ^ z;
const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

/** The cut-down MD4 transform of the htree hash (three rounds of eight steps). */
function halfMD4Transform(buf: Uint32Array, m: Uint32Array): void {
  let a = buf[0]!, b = buf[1]!, c = buf[2]!, d = buf[3]!;
  const r = (f: typeof F, w: number, x: number, y: number, z: number, k: number, s: number): number => rotl((w + f(x, y, z) + k) | 0, s);
  a = r(F, a, b, c, d, m[0]!, 3); d = r(F, d, a, b, c, m[1]!, 7); c = r(F, c, d, a, b, m[2]!, 11); b = r(F, b, c, d, a, m[3]!, 19);
  a = r(F, a, b, c, d, m[4]!, 3); d = r(F, d, a, b, c, m[5]!, 7); c = r(F, c, d, a, b, m[6]!, 11); b = r(F, b, c, d, a, m[7]!, 19);
  a = r(G, a, b, c, d, (m[1]! + K2) | 0, 3); d = r(G, d, a, b, c, (m[3]! + K2) | 0, 5); c = r(G, c, d, a, b, (m[5]! + K2) | 0, 9); b = r(G, b, c, d, a, (m[7]! + K2) | 0, 13);
  a = r(G, a, b, c, d, (m[0]! + K2) | 0, 3); d = r(G, d, a, b, c, (m[2]! + K2) | 0, 5); c = r(G, c, d, a, b, (m[4]! + K2) | 0, 9); b = r(G, b, c, d, a, (m[6]! + K2) | 0, 13);
  a = r(H, a, b, c, d, (m[3]! + K3) | 0, 3); d = r(H, d, a, b, c, (m[7]! + K3) | 0, 9); c = r(H, c, d, a, b, (m[2]! + K3) | 0, 11); b = r(H, b, c, d, a, (m[6]! + K3) | 0, 15);
  a = r(H, a, b, c, d, (m[1]! + K3) | 0, 3); d = r(H, d, a, b, c, (m[5]! + K3) | 0, 9); c = r(H, c, d, a, b, (m[0]! + K3) | 0, 11); b = r(H, b, c, d, a, (m[4]! + K3) | 0, 15);
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
  const buf = new Uint32Array(4);
  buf.set(seed.some((w) => w !== 0) ? seed : DEFAULT_SEED);
  const m = new Uint32Array(8);
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
  return { hash: (hash & ~1) >>> 0, minor };
}

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
