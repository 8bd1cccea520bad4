/**
 * A plain image file as a BlockDevice: `puzzlefs serve --raw NAME=FILE`, and
 * the like-for-like baseline when benchmarking against `nbdkit file`.
 *
 * Allocation: Node has no SEEK_DATA/SEEK_HOLE, and scanning for zero blocks
 * would read the whole file at start-up, so the file is reported as data
 * throughout (no `allocation()`), as nbdkit does for a non-sparse file.
 *
 * Reads up to `syncReadMax` (default 4 MiB) use readSync on the event loop.
 * Measured with bench/serve.ts on a busy 2-core machine: the thread-pool
 * round trip (two thread wake-ups per read) tripled 4 KiB QD1 latency and
 * cost ~25% more CPU per GiB than nbdkit; synchronous page-cache reads match
 * nbdkit's CPU per GiB. The price: a read that misses the page cache stalls
 * the loop (every connection) for one disk access. Larger reads still go to
 * the thread pool so a 32 MiB copy does not hold up other clients.
 */
import { close, fstat, open, read, readSync } from "node:fs";
import { promisify } from "node:util";
import type { BlockDevice } from "../common/blockdev.ts";
import { PfsError } from "../common/errors.ts";

const openP = promisify(open);
const fstatP = promisify(fstat);
const closeP = promisify(close);

/** fs.read as a promise without the promise API's per-call FileHandle overhead. */
function readP(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export interface RawFileOptions {
  /** Reads up to this many bytes are done synchronously (see above). 0 disables. */
  syncReadMax?: number;
}

export class RawFileDevice implements BlockDevice {
  readonly blockSize = 4096;
  private fd: number | undefined;
  private readonly syncReadMax: number;

  private constructor(
    readonly path: string,
    fd: number,
    readonly size: number,
    opts: RawFileOptions,
  ) {
    this.fd = fd;
    this.syncReadMax = opts.syncReadMax ?? 4 * 1024 * 1024;
  }

  /** Open `path` read-only. It must be a regular file. */
  static async open(path: string, opts: RawFileOptions = {}): Promise<RawFileDevice> {
    let fd: number;
    try {
      fd = await openP(path, "r");
    } catch (e) {
      throw PfsError.io(`raw image ${path}`, e);
    }
    try {
      const st = await fstatP(fd);
      if (!st.isFile()) throw PfsError.usage(`raw image ${path}: not a regular file`, "pass an image file to --raw NAME=FILE");
      return new RawFileDevice(path, fd, st.size, opts);
    } catch (e) {
      await closeP(fd).catch(() => {});
      throw e instanceof PfsError ? e : PfsError.io(`raw image ${path}`, e);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, buf);
    return buf;
  }

  async readInto(offset: number, dest: Uint8Array): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) throw PfsError.io(`raw image ${this.path}`, Object.assign(new Error("closed"), { code: "EBADF" }));
    const buf = Buffer.isBuffer(dest) ? dest : Buffer.from(dest.buffer, dest.byteOffset, dest.length);
    const length = buf.length;
    const sync = length <= this.syncReadMax;
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = sync ? readSync(fd, buf, done, length - done, offset + done) : await readP(fd, buf, done, length - done, offset + done);
      } catch (e) {
        throw this.failure(offset + done, e);
      }
      // The file shrank under us: the first missing byte is the bad one.
      if (n === 0) throw this.failure(offset + done, Object.assign(new Error("unexpected end of file"), { code: "EIO" }));
      done += n;
    }
  }

  private failure(at: number, e: unknown): PfsError {
    const err = PfsError.io(`raw image ${this.path} @0x${at.toString(16)}`, e);
    err.data.offset = at;
    return err;
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeP(fd);
  }
}
