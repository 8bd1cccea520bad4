/**
 * Reading a whole file of an image layout, safely: opened non-blocking so a
 * FIFO planted where a blob or index.json belongs cannot hang us, refused
 * unless it is a regular file, size checked before anything is allocated.
 */
import { randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { PfsError } from "../common/errors.ts";

export interface ReadFileOptions {
  /** Refuse (FORMAT) a file of another size (a descriptor's `size`). */
  expectedSize?: number;
  /** Refuse (LIMIT) files larger than this. */
  maxSize: number;
  /** Hint for a missing file (NOT_FOUND). */
  missingHint?: string;
  /** Called once the file is open (blob-open counters). */
  onOpen?: () => void;
}

export async function readRegularFile(path: string, what: string, opts: ReadFileOptions): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw PfsError.notFound(what, opts.missingHint);
    throw PfsError.io(what, e);
  }
  opts.onOpen?.();
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw PfsError.format(what, `${path} is not a regular file`);
    if (opts.expectedSize !== undefined && st.size !== opts.expectedSize) {
      throw PfsError.format(what, "size differs from its descriptor", { expected: opts.expectedSize, got: st.size });
    }
    if (st.size > opts.maxSize) throw PfsError.limit(what, `${st.size} bytes > ${opts.maxSize}`);
    const buf = new Uint8Array(st.size);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    if (off !== buf.length) throw PfsError.format(what, "file shrank while being read", { expected: buf.length, got: off });
    return buf;
  } catch (e) {
    if (e instanceof PfsError) throw e;
    throw PfsError.io(what, e);
  } finally {
    await fh.close();
  }
}

/**
 * Write `bytes` to `path` atomically: into a fresh temp file in `tmpDir`
 * (same file system), then rename over `path`, so a reader sees the old file
 * or the new one, never half of one. The temp file is removed on failure and
 * the operating-system error is rethrown for the caller to name.
 */
export async function writeFileAtomic(path: string, tmpDir: string, bytes: Uint8Array, tmpPrefix = ".tmp"): Promise<void> {
  const tmp = join(tmpDir, `${tmpPrefix}-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(bytes);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
