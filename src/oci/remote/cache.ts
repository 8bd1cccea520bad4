/**
 * The local content-addressed cache of registry blobs:
 * `<dir>/blobs/sha256/<hex>`, shared by every process on the host that is
 * given the same directory, and kept across restarts.
 *
 *  - Only verified bytes go in (the caller hashed them), and every read
 *    hashes again: a file damaged on disk is deleted and reported as a miss.
 *  - Writes go to `<dir>/tmp/` and are renamed into place, so a reader in
 *    another process sees a whole blob or none. Two processes writing the
 *    same blob rename identical bytes over each other, which is harmless.
 *  - LRU by mtime: a hit touches the file (at most once a minute). When the
 *    bytes this process believes are cached pass `maxBytes`, it rescans the
 *    directory (that also counts what other processes added) and deletes the
 *    least recently used blobs down to 90 %. Concurrent evictions in several
 *    processes only ever delete cache files; a blob unlinked under a reader
 *    that already opened it is still read whole, and one gone before the open
 *    is a miss.
 */
import { mkdir, readdir, stat, unlink, utimes } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { isSha256Hex, sha256Hex } from "../digest.ts";
import { readRegularFile, writeFileAtomic } from "../file.ts";

export const DEFAULT_CACHE_MAX = 2 * 1024 ** 3;
const TOUCH_EVERY_MS = 60_000;
const STALE_TMP_MS = 3600_000;

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "puzzlefs");
}

export interface DiskCacheStats {
  hits: number;
  misses: number;
  writes: number;
  /** Files found damaged (wrong size or digest) and deleted. */
  corrupt: number;
  evicted: number;
  scans: number;
}

export class DiskCache {
  readonly stats: DiskCacheStats = { hits: 0, misses: 0, writes: 0, corrupt: 0, evicted: 0, scans: 0 };
  private readonly blobDir: string;
  private readonly tmpDir: string;
  /** Our estimate of the bytes in the cache: exact after a scan, plus what we wrote since. */
  private estimate = 0;
  private writtenSinceScan = 0;
  private evicting: Promise<void> | null = null;

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    this.blobDir = join(dir, "blobs", "sha256");
    this.tmpDir = join(dir, "tmp");
  }

  /** Create the directories if needed and take stock of what is there. */
  static async open(dir: string, maxBytes = DEFAULT_CACHE_MAX): Promise<DiskCache> {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw PfsError.usage(`cache size ${maxBytes} is not a byte count`);
    const c = new DiskCache(dir, maxBytes);
    try {
      await mkdir(c.blobDir, { recursive: true, mode: 0o755 });
      await mkdir(c.tmpDir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw PfsError.io(`creating the blob cache ${dir}`, e);
    }
    await c.scan(false);
    return c;
  }

  path(hex: string): string {
    if (!isSha256Hex(hex)) throw PfsError.internal(`DiskCache: not a sha256 hex digest: ${JSON.stringify(hex)}`);
    return join(this.blobDir, hex);
  }

  /** Bytes in the cache as this process last counted them. */
  get bytes(): number {
    return this.estimate;
  }

  /** The blob, verified, or null when it is not cached (or was damaged, and is now gone). */
  async get(hex: string, expectedSize?: number): Promise<Uint8Array | null> {
    const path = this.path(hex);
    let bytes: Uint8Array;
    try {
      bytes = await readRegularFile(path, `cached blob sha256:${hex}`, { maxSize: Number.MAX_SAFE_INTEGER, expectedSize });
    } catch (e) {
      if (e instanceof PfsError && e.code === ErrorCode.NOT_FOUND) {
        this.stats.misses++;
        return null;
      }
      if (e instanceof PfsError && e.code === ErrorCode.FORMAT) return this.drop(hex, path, e.message);
      throw e;
    }
    if (sha256Hex(bytes) !== hex) return this.drop(hex, path, "sha256 mismatch");
    this.stats.hits++;
    void this.touch(path);
    return bytes;
  }

  private async drop(hex: string, path: string, why: string): Promise<null> {
    log.oci("cache: dropping damaged %s (%s)", hex, why);
    this.stats.corrupt++;
    this.stats.misses++;
    await unlink(path).catch(() => {});
    return null;
  }

  private async touch(path: string): Promise<void> {
    try {
      const st = await stat(path);
      const now = Date.now();
      if (now - st.mtimeMs > TOUCH_EVERY_MS) await utimes(path, now / 1000, now / 1000);
    } catch {
      // Evicted meanwhile: nothing to keep fresh.
    }
  }

  has(hex: string): Promise<boolean> {
    return stat(this.path(hex)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Keep `bytes`, which the caller has verified to hash to `hex`. Failures
   * (a full disk) are logged and swallowed: the cache is an optimization.
   */
  async put(hex: string, bytes: Uint8Array): Promise<void> {
    if (this.maxBytes === 0 || bytes.length > this.maxBytes / 2) return;
    const path = this.path(hex);
    try {
      await writeFileAtomic(path, this.tmpDir, bytes, hex.slice(0, 16));
    } catch (e) {
      log.oci("cache: cannot store %s: %s", hex, (e as Error).message);
      return;
    }
    this.stats.writes++;
    this.estimate += bytes.length;
    this.writtenSinceScan += bytes.length;
    // Other processes grow the cache too: look again after writing a tenth of it. The
    // scan runs in the background, off the read path that called put (see idle()).
    if (this.estimate > this.maxBytes || this.writtenSinceScan > this.maxBytes / 10) this.evict().catch((e: unknown) => log.oci("cache: eviction failed: %s", (e as Error).message));
  }

  /** Resolves when no eviction scan is running (tests; a clean shutdown). */
  async idle(): Promise<void> {
    while (this.evicting) await this.evicting;
  }

  /** Rescan and delete least recently used blobs until at most 90 % of maxBytes remain. */
  evict(): Promise<void> {
    if (!this.evicting) {
      this.evicting = this.scan(true).finally(() => {
        this.evicting = null;
      });
    }
    return this.evicting;
  }

  private async scan(evict: boolean): Promise<void> {
    this.stats.scans++;
    const files: Array<{ path: string; size: number; mtime: number }> = [];
    let total = 0;
    let names: string[];
    try {
      names = await readdir(this.blobDir);
    } catch (e) {
      log.oci("cache: cannot list %s: %s", this.blobDir, (e as Error).message);
      return;
    }
    for (const n of names) {
      if (!isSha256Hex(n)) continue;
      try {
        const st = await stat(join(this.blobDir, n));
        if (!st.isFile()) continue;
        files.push({ path: join(this.blobDir, n), size: st.size, mtime: st.mtimeMs });
        total += st.size;
      } catch {
        // Gone (another process evicted it): not ours to count.
      }
    }
    this.writtenSinceScan = 0;
    this.estimate = total;
    if (evict && total > this.maxBytes) {
      files.sort((a, b) => a.mtime - b.mtime);
      const target = Math.floor(this.maxBytes * 0.9);
      for (const f of files) {
        if (this.estimate <= target) break;
        try {
          await unlink(f.path);
          this.stats.evicted++;
        } catch {
          // Another process evicted it first.
        }
        this.estimate -= f.size;
      }
      log.oci("cache: evicted down to %d bytes (max %d)", this.estimate, this.maxBytes);
    }
    if (evict) await this.sweepTmp();
  }

  /** Temp files left by processes that died mid-write. */
  private async sweepTmp(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch {
      return;
    }
    const now = Date.now();
    for (const n of names) {
      const p = join(this.tmpDir, n);
      try {
        if (now - (await stat(p)).mtimeMs > STALE_TMP_MS) await unlink(p);
      } catch {
        // Renamed or removed meanwhile.
      }
    }
  }
}
