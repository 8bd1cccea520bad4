/**
 * Chunk → FileChunk mapping (spec §3.4). The data stream is the concatenation
 * of the stream files (walk order); each chunk of it is stored as one blob,
 * and every file gets the slices of the chunks that cover its bytes:
 * `FileChunk{blob: {digest, offset: position inside the chunk, compressed}, len}`.
 * Empty files get no slices (an empty list).
 */
import { PfsError } from "../../common/errors.ts";
import type { StreamFile } from "./walk.ts";

export class ChunkMapper {
  private i = 0;
  /** Bytes of files[i] already mapped. */
  private used = 0;

  /** `files` may still grow (the walk appends while the stream is being chunked). */
  constructor(private readonly files: readonly StreamFile[]) {}

  /** Map the next chunk of the stream, `length` bytes, stored as blob `digest`. */
  add(length: number, digest: Uint8Array, compressed: boolean): void {
    let cu = 0;
    while (cu < length) {
      let f = this.files[this.i];
      // Files already whole, and empty files (which get no slices), are passed over here, not on arrival.
      while (f && this.used === f.size) {
        this.i++;
        this.used = 0;
        f = this.files[this.i];
      }
      if (!f) throw PfsError.internal(`chunk of ${length} bytes runs past the end of the data stream`);
      const room = Math.min(f.size - this.used, length - cu);
      f.chunks.push({ blob: { digest, offset: BigInt(cu), compressed }, len: BigInt(room) });
      cu += room;
      this.used += room;
    }
  }

  /** Every byte of every file was mapped. */
  get complete(): boolean {
    for (let j = this.i; j < this.files.length; j++) if (this.files[j]!.size > (j === this.i ? this.used : 0)) return false;
    return true;
  }
}
