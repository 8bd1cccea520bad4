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
  private i = -1;
  /** Bytes of files[i] already mapped. */
  private used = 0;

  constructor(private readonly files: readonly StreamFile[]) {
    this.advance();
  }

  private advance(): void {
    this.used = 0;
    do this.i++;
    while (this.i < this.files.length && this.files[this.i]!.size === 0);
  }

  /** Map the next chunk of the stream, `length` bytes, stored as blob `digest`. */
  add(length: number, digest: Uint8Array, compressed: boolean): void {
    let cu = 0;
    while (cu < length) {
      const f = this.files[this.i];
      if (!f) throw PfsError.internal(`chunk of ${length} bytes runs past the end of the data stream`);
      const room = Math.min(f.size - this.used, length - cu);
      f.chunks.push({ blob: { digest, offset: BigInt(cu), compressed }, len: BigInt(room) });
      cu += room;
      this.used += room;
      if (this.used === f.size) this.advance();
    }
  }

  /** Every byte of every file was mapped. */
  get complete(): boolean {
    return this.i >= this.files.length;
  }
}
