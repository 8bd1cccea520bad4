/**
 * The content-addressed blob store `<oci_dir>/blobs/sha256/<hex>` (spec §1.1,
 * §3.5). Every blob handed out has had its sha256 checked against its name
 * (ARCHITECTURE invariant "verified"); writes go to a temp file and are
 * renamed into place; an existing digest is never replaced by other bytes.
 * `blobs/sha256` (or any blob) may be a symlink: paths are opened normally,
 * so the kernel follows it.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants as fsc, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { log } from "../common/debug.ts";
import { isSha256Hex, sha256Hex } from "./digest.ts";
import { readRegularFile, writeFileAtomic } from "./file.ts";

export interface BlobReadOptions {
  /** How to name the blob in errors ("rootfs blob sha256:…"). */
  what?: string;
  /** The descriptor's size: a different file size is refused before reading. */
  expectedSize?: number;
  /** Refuse (LIMIT) blobs larger than this many bytes. Default 1 GiB. */
  maxSize?: number;
}

/** A blob whose whole content was read and verified once; ranges come from memory. */
export interface VerifiedBlob {
  readonly hex: string;
  readonly size: number;
  readonly bytes: Uint8Array;
  /** Bytes [offset, offset+length); throws FORMAT when the range leaves the blob. */
  read(offset: number, length: number): Uint8Array;
}

export interface BlobStoreStats {
  /** Blob files opened for reading content (get, open, and put's re-check). */
  opens: number;
  bytesRead: number;
  /** Blobs newly written by put. */
  writes: number;
}

export const DEFAULT_MAX_BLOB = 1 << 30;

/** Wrap bytes the caller has verified to hash to `hex` (any blob source uses this). */
export function verifiedBlob(hex: string, bytes: Uint8Array, what: string): VerifiedBlob {
  return {
    hex,
    size: bytes.length,
    bytes,
    read(offset: number, length: number): Uint8Array {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
        throw PfsError.format(what, `range [${offset}, +${length}) is outside the blob`, { offset, expected: `≤ ${bytes.length}`, got: offset + length });
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

export class BlobStore {
  /** `<oci_dir>/blobs/sha256` */
  readonly dir: string;
  readonly stats: BlobStoreStats = { opens: 0, bytesRead: 0, writes: 0 };
  /** Called with the hex digest each time a blob is opened for reading (tests prove laziness with it). */
  onOpen: ((hex: string) => void) | undefined;

  constructor(ociDir: string) {
    this.dir = join(ociDir, "blobs", "sha256");
  }

  path(hex: string): string {
    if (!isSha256Hex(hex)) throw PfsError.internal(`BlobStore: not a sha256 hex digest: ${JSON.stringify(hex)}`);
    return join(this.dir, hex);
  }

  /** The blob's file size, or null when it does not exist. */
  async size(hex: string): Promise<number | null> {
    try {
      return (await stat(this.path(hex))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw PfsError.io(`blob sha256:${hex}`, e);
    }
  }

  async has(hex: string): Promise<boolean> {
    return (await this.size(hex)) !== null;
  }

  /** The whole blob, after its sha256 matched its name. */
  async get(hex: string, opts: BlobReadOptions = {}): Promise<Uint8Array> {
    const what = opts.what ?? `blob sha256:${hex}`;
    const bytes = await this.readRaw(hex, what, opts);
    const got = sha256Hex(bytes);
    if (got !== hex) {
      log.oci("digest mismatch %s: got %s", hex, got);
      throw PfsError.digest(what, hex, got);
    }
    return bytes;
  }

  /** Verify the whole blob once, then serve ranges of it (chunk blobs are ≤ 256 KiB). */
  async open(hex: string, opts: BlobReadOptions = {}): Promise<VerifiedBlob> {
    return verifiedBlob(hex, await this.get(hex, opts), opts.what ?? `blob sha256:${hex}`);
  }

  private async readRaw(hex: string, what: string, opts: BlobReadOptions): Promise<Uint8Array> {
    const path = this.path(hex);
    const buf = await readRegularFile(path, what, {
      expectedSize: opts.expectedSize,
      maxSize: opts.maxSize ?? DEFAULT_MAX_BLOB,
      missingHint: `the blob file ${path} is missing; copy the complete image again`,
      onOpen: () => {
        this.stats.opens++;
        this.onOpen?.(hex);
      },
    });
    this.stats.bytesRead += buf.length;
    return buf;
  }

  /**
   * Store `bytes` under their sha256 (spec §3.5 step 5): an existing blob is
   * re-hashed and kept when equal (this preserves fs-verity on it), refused
   * with EXISTS when different; a new one is written to a temp file in the
   * same directory and renamed into place.
   */
  async put(bytes: Uint8Array): Promise<{ hex: string; size: number; existed: boolean }> {
    const hex = sha256Hex(bytes);
    const path = this.path(hex);
    if (await this.has(hex)) {
      try {
        await this.get(hex);
      } catch (e) {
        if (e instanceof PfsError && (e.code === ErrorCode.DIGEST || e.code === ErrorCode.LIMIT)) {
          throw new PfsError(ErrorCode.EXISTS, `blob sha256:${hex} already exists and it's not content addressable (${path} has other bytes)`, {
            hint: "remove the corrupt blob file, then run the command again",
            data: { what: `blob sha256:${hex}` },
          });
        }
        throw e;
      }
      return { hex, size: bytes.length, existed: true };
    }
    await this.ensureDir();
    try {
      await writeFileAtomic(path, this.dir, bytes);
    } catch (e) {
      throw PfsError.io(`writing blob sha256:${hex}`, e);
    }
    this.stats.writes++;
    log.oci("put blob %s (%d bytes)", hex, bytes.length);
    return { hex, size: bytes.length, existed: false };
  }

  /**
   * `put` with blocking I/O, same rules (re-hash an existing blob, refuse
   * other bytes, temp file + rename). For the builder's worker threads: one
   * blocking write per chunk is much cheaper there than five thread-pool
   * round trips, and the worker has nothing else to do meanwhile.
   */
  putSync(bytes: Uint8Array): { hex: string; size: number; existed: boolean } {
    const hex = sha256Hex(bytes);
    const path = this.path(hex);
    let exists: boolean;
    try {
      exists = statSync(path, { throwIfNoEntry: false }) !== undefined;
    } catch (e) {
      throw PfsError.io(`blob sha256:${hex}`, e);
    }
    if (exists) {
      let existing: Buffer;
      try {
        existing = readFileSync(path);
      } catch (e) {
        throw PfsError.io(`blob sha256:${hex}`, e);
      }
      this.stats.opens++;
      this.stats.bytesRead += existing.length;
      if (sha256Hex(existing) !== hex) {
        throw new PfsError(ErrorCode.EXISTS, `blob sha256:${hex} already exists and it's not content addressable (${path} has other bytes)`, {
          hint: "remove the corrupt blob file, then run the command again",
          data: { what: `blob sha256:${hex}` },
        });
      }
      return { hex, size: bytes.length, existed: true };
    }
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
    // No O_TRUNC (as "wx" would add): on ext4 it makes every create markedly slower.
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL;
    try {
      let fd: number;
      try {
        fd = openSync(tmp, flags, 0o644);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        mkdirSync(this.dir, { recursive: true, mode: 0o755 });
        fd = openSync(tmp, flags, 0o644);
      }
      try {
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        // not created, or already gone
      }
      throw PfsError.io(`writing blob sha256:${hex}`, e);
    }
    this.stats.writes++;
    log.oci("put blob %s (%d bytes)", hex, bytes.length);
    return { hex, size: bytes.length, existed: false };
  }

  /** mkdir -p blobs/sha256 (mode 0755); an existing symlink to a directory is fine. */
  async ensureDir(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw PfsError.io(`creating ${this.dir}`, e);
    }
  }
}
