/**
 * Reads the data stream (spec §3.3): the contents of the stream files, in
 * order, as one sequence of buffers. Each file must still be the regular file
 * of the walk, with the size the walk saw: the chunk mapping (§3.4) is
 * computed from those sizes, so a file that grew or shrank would silently
 * corrupt every later file's mapping (upstream's behaviour, §8). Here it is an
 * error naming the file.
 */
import { constants, promises as fsp } from "node:fs";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import type { StreamFile } from "./walk.ts";

const READ_SIZE = 1 << 20;

function changed(f: StreamFile, what: string): PfsError {
  return new PfsError(ErrorCode.IO, `${f.path.toString()}: ${what} while the image was being built`, {
    hint: "build from a tree that nothing modifies during the build (e.g. a snapshot)",
    data: { path: f.path.toString(), size: f.size },
  });
}

/**
 * Yield the stream's bytes. Each yielded buffer is only valid until the next
 * iteration (one read buffer is reused); consumers copy what they keep.
 */
export async function* readStream(files: readonly StreamFile[]): AsyncGenerator<Uint8Array> {
  const buf = Buffer.allocUnsafe(READ_SIZE);
  for (const f of files) {
    if (f.size === 0) continue;
    let h: fsp.FileHandle;
    try {
      // O_NOFOLLOW: a file replaced by a symlink is not followed; O_NONBLOCK: one replaced by a fifo does not hang.
      h = await fsp.open(f.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      throw PfsError.io(`opening ${f.path.toString()}`, e);
    }
    try {
      const st = await h.stat();
      if (!st.isFile()) throw changed(f, "stopped being a regular file");
      let done = 0;
      for (;;) {
        // Ask for one byte more than expected at the end, to notice growth.
        const want = Math.min(READ_SIZE, f.size - done + 1);
        let n: number;
        try {
          ({ bytesRead: n } = await h.read(buf, 0, want, null));
        } catch (e) {
          throw PfsError.io(`reading ${f.path.toString()}`, e);
        }
        if (n === 0) break;
        if (done + n > f.size) throw changed(f, `grew beyond its ${f.size} bytes`);
        done += n;
        yield buf.subarray(0, n);
      }
      if (done !== f.size) throw changed(f, `shrank from ${f.size} to ${done} bytes`);
    } finally {
      await h.close();
    }
  }
}
