/**
 * Reads the data stream (spec §3.3): the contents of the stream files, in
 * order, as one sequence of bytes. Each file must still be the regular file
 * of the walk, with the size the walk saw: the chunk mapping (§3.4) is
 * computed from those sizes, so a file that grew or shrank would silently
 * corrupt every later file's mapping (upstream's behaviour, §8). Here it is an
 * error naming the file.
 *
 * Synchronous I/O on purpose: reading many files through fs.promises costs
 * several thread-pool round trips per file and measured ~10× slower (100 vs
 * 1000+ MB/s from the page cache); the CPU-heavy work runs in worker threads
 * meanwhile, so blocking this thread for one read at a time costs nothing.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { nativeReadfile } from "../native.ts";
import type { StreamFile } from "./walk.ts";

const READ_SIZE = 1 << 20;

function changed(f: StreamFile, what: string): PfsError {
  return new PfsError(ErrorCode.IO, `${f.path.toString()}: ${what} while the image was being built`, {
    hint: "build from a tree that nothing modifies during the build (e.g. a snapshot)",
    data: { path: f.path.toString(), size: f.size },
  });
}

/**
 * The stream as successive reads into buffers the caller provides (the
 * builder reads straight into the chunker's slabs, so file bytes are copied
 * once, by the kernel). Files are opened one at a time; call close() when
 * stopping early, so the open one is closed.
 *
 * `files` may grow while reading (the walk appends as it goes); `more`, when
 * given, is asked for more files once the known ones are read, and returns
 * false when there are none.
 */
export class StreamReader {
  private next = 0;
  private fd = -1;
  private file: StreamFile | undefined;
  private done = 0;
  private readonly readfile: ((path: Buffer, dest: Uint8Array) => number) | null;

  /** `native: false` reads every file with Node's fs (the reference the C path is tested against). */
  constructor(
    private readonly files: readonly StreamFile[],
    private readonly more: () => boolean = () => false,
    opts: { native?: boolean } = {},
  ) {
    this.readfile = opts.native === false ? null : nativeReadfile();
  }

  /** Read the next bytes of the stream into `dest` (1 … dest.length of them); 0 once the stream has ended. */
  read(dest: Uint8Array): number {
    if (dest.length === 0) throw new RangeError("StreamReader.read: empty destination");
    for (;;) {
      if (this.fd < 0) {
        const f = this.nextFile();
        if (!f) return 0;
        // A file that fits (with the byte that notices growth) is read whole, in one native call.
        if (this.readfile && f.size < dest.length) return this.whole(f, dest);
        this.open(f);
      }
      const f = this.file!;
      // At the end of the file, ask for one byte more than expected, to notice growth.
      const want = Math.min(dest.length, f.size - this.done + 1);
      let n: number;
      try {
        n = readSync(this.fd, dest, 0, want, null);
      } catch (e) {
        this.close();
        throw PfsError.io(`reading ${f.path.toString()}`, e);
      }
      if (n === 0) {
        this.close();
        if (this.done !== f.size) throw changed(f, `shrank from ${f.size} to ${this.done} bytes`);
        continue;
      }
      if (this.done + n > f.size) {
        this.close();
        throw changed(f, `grew beyond its ${f.size} bytes`);
      }
      this.done += n;
      // A short read that reaches the walk's size is the end of a regular file: no extra read for EOF.
      if (this.done === f.size && n < want) this.close();
      return n;
    }
  }

  /** The next non-empty file, asking the walk for more when the known ones are done. */
  private nextFile(): StreamFile | undefined {
    for (;;) {
      if (this.next === this.files.length && !this.more()) return undefined;
      if (this.next === this.files.length) continue;
      const f = this.files[this.next++]!;
      if (f.size > 0) return f;
    }
  }

  private whole(f: StreamFile, dest: Uint8Array): number {
    let n: number;
    try {
      n = this.readfile!(f.path, dest.subarray(0, f.size + 1));
    } catch (e) {
      const syscall = (e as NodeJS.ErrnoException).syscall;
      throw PfsError.io(`${syscall === "open" ? "opening" : syscall === "read" ? "reading" : "fstat"} ${f.path.toString()}`, e);
    }
    if (n < 0) throw changed(f, "stopped being a regular file");
    if (n > f.size) throw changed(f, `grew beyond its ${f.size} bytes`);
    if (n < f.size) throw changed(f, `shrank from ${f.size} to ${n} bytes`);
    return n;
  }

  private open(f: StreamFile): void {
    let fd: number;
    try {
      // O_NOFOLLOW: a file replaced by a symlink is not followed; O_NONBLOCK: one replaced by a fifo does not hang.
      fd = openSync(f.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      throw PfsError.io(`opening ${f.path.toString()}`, e);
    }
    this.fd = fd;
    this.file = f;
    this.done = 0;
    let regular: boolean;
    try {
      regular = fstatSync(fd).isFile();
    } catch (e) {
      this.close();
      throw PfsError.io(`fstat ${f.path.toString()}`, e);
    }
    if (!regular) {
      this.close();
      throw changed(f, "stopped being a regular file");
    }
  }

  /** Close the file being read, if any. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    closeSync(fd);
  }
}

/**
 * Yield the stream's bytes. Each yielded buffer is only valid until the next
 * iteration (one read buffer is reused); consumers copy what they keep.
 * It is a plain generator, so `for await` consumers work too.
 */
export function* readStream(files: readonly StreamFile[], opts: { native?: boolean } = {}): Generator<Uint8Array> {
  const buf = Buffer.allocUnsafe(READ_SIZE);
  const r = new StreamReader(files, undefined, opts);
  try {
    for (let n = r.read(buf); n > 0; n = r.read(buf)) yield buf.subarray(0, n);
  } finally {
    r.close();
  }
}
