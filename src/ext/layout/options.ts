/**
 * Planner options and their resolution into the exact bytes the image
 * carries. Everything that varies between images derives from the manifest
 * digest and the tag (ARCHITECTURE.md invariant 2: same image + options →
 * same bytes), never from the clock or a random source.
 */
import { createHash } from "node:crypto";
import { PfsError } from "../../common/errors.ts";
import { csumSeed } from "../csum.ts";

export interface ExtOptions {
  /** All inode times, in seconds since the epoch. Default: $SOURCE_DATE_EPOCH, else 0. */
  mtime?: number;
  /** Image digest ("sha256:…"; the CLI passes the rootfs blob's): seeds the UUID and the htree hash seed. */
  digest?: string;
  /** Volume label (e.g. the tag); truncated to 16 bytes at a character boundary. */
  label?: string;
}

export interface ResolvedOptions {
  mtime: number;
  uuid: Uint8Array;
  /** s_hash_seed as four little-endian u32 words, never all zero. */
  hashSeed: Uint32Array;
  label: Uint8Array;
  /** crc32c seed of every per-structure checksum (csum.ts). */
  csumSeed: number;
}

/** ext4 stores 32 bits of seconds plus 2 epoch bits: [-2^31, 2^34 - 2^31). */
export const MTIME_MIN = -0x8000_0000;
export const MTIME_MAX = 0x4_0000_0000 - 0x8000_0000 - 1;

function defaultMtime(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env === undefined || env === "") return 0;
  if (!/^-?\d+$/.test(env)) throw PfsError.usage(`SOURCE_DATE_EPOCH=${env}: not an integer`, "set it to seconds since 1970-01-01, or unset it");
  return Number(env);
}

const derive = (what: string, digest: string): Buffer => createHash("sha256").update(`puzzlefs-nbd:ext:${what}:${digest}`).digest();

/** Truncate UTF-8 to at most `max` bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.length <= max) return b;
  let n = max;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return b.subarray(0, n);
}

export function resolveOptions(opts: ExtOptions = {}): ResolvedOptions {
  const mtime = opts.mtime ?? defaultMtime();
  if (!Number.isInteger(mtime) || mtime < MTIME_MIN || mtime > MTIME_MAX) {
    throw PfsError.usage(`mtime ${mtime}: out of range for ext4`, `use whole seconds between ${MTIME_MIN} and ${MTIME_MAX}`);
  }
  const digest = opts.digest ?? "";
  const uuid = new Uint8Array(derive("uuid", digest).subarray(0, 16));
  uuid[6] = (uuid[6]! & 0x0f) | 0x80; // RFC 9562 version 8: custom, name-derived
  uuid[8] = (uuid[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const seedBytes = derive("hash-seed", digest);
  const hashSeed = new Uint32Array(4);
  for (let i = 0; i < 4; i++) hashSeed[i] = seedBytes.readUInt32LE(i * 4);
  if (hashSeed.every((w) => w === 0)) hashSeed[0] = 1; // all-zero means "default seed" to the kernel
  return { mtime, uuid, hashSeed, label: truncateUtf8(opts.label ?? "", 16), csumSeed: csumSeed(uuid) };
}

/** Seconds → (i_*time, i_*time_extra) with the epoch bits in extra bits 0-1 (inodes.rst). */
export function encodeTime(t: number): { lo: number; extra: number } {
  const lo = t | 0; // low 32 bits, signed
  const epoch = ((t - lo) / 0x1_0000_0000) & 3;
  return { lo: lo >>> 0, extra: epoch };
}
