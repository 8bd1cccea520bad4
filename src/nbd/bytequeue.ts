/**
 * The session's input buffer: socket chunks in arrival order, consumed from
 * the front. `take(n)` returns a view when the n bytes sit inside one chunk
 * (the common case: a whole request header) and copies only when a message
 * straddles chunks. Views are valid until the caller returns (STYLE.md §5).
 */
const EMPTY = Buffer.alloc(0);

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // index of the first chunk still holding bytes
  private pos = 0; // bytes of chunks[head] already consumed
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.chunks.push(b);
    this.total += b.length;
  }

  /** Remove and return exactly `n` bytes; the caller checked `length >= n`. */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`ByteQueue.take(${n}) with ${this.total} buffered`);
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head]!;
    if (first.length - this.pos >= n) {
      const v = first.subarray(this.pos, this.pos + n);
      this.advance(n);
      return v;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(n - filled, c.length - this.pos);
      c.copy(out, filled, this.pos, this.pos + k);
      filled += k;
      this.advance(k);
    }
    return out;
  }

  /** Drop up to `n` bytes without copying them; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.total);
    const dropped = left;
    while (left > 0) {
      const c = this.chunks[this.head]!;
      const k = Math.min(left, c.length - this.pos);
      this.advance(k);
      left -= k;
    }
    return dropped;
  }

  /** Consume k bytes that lie within chunks[head]. */
  private advance(k: number): void {
    this.pos += k;
    this.total -= k;
    if (this.pos === this.chunks[this.head]!.length) {
      this.head++;
      this.pos = 0;
      // Reset when empty (the common case), compact now and then otherwise.
      if (this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      } else if (this.head > 64) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
    }
  }
}
