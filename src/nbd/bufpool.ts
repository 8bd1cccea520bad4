/**
 * Reusable READ reply buffers. Allocating a fresh 128 KiB–32 MiB Buffer per
 * request costs an mmap, page faults and GC pressure on every read (a third
 * of the server's busy time in a profile of `nbdcopy`); a buffer goes back
 * here once the socket has taken its bytes (the write callback), and the next
 * read of a similar size reuses it. Sizes are rounded up to powers of two;
 * at most `maxPooledBytes` sit idle in the pool.
 */
const MIN_CLASS = 4096;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooled = 0;

  constructor(readonly maxPooledBytes = 64 * 1024 * 1024) {}

  /** Bytes currently idle in the pool. */
  get idleBytes(): number {
    return this.pooled;
  }

  static classOf(n: number): number {
    let c = MIN_CLASS;
    while (c < n) c *= 2;
    return c;
  }

  /** A Buffer of exactly `n` bytes (contents undefined). Give it back with release(). */
  acquire(n: number): Buffer {
    const cls = BufferPool.classOf(n);
    const ab = this.free.get(cls)?.pop();
    if (ab) {
      this.pooled -= cls;
      return Buffer.from(ab, 0, n);
    }
    return Buffer.from(new ArrayBuffer(cls), 0, n);
  }

  /** Return a buffer from acquire(); it must no longer be referenced by anyone. */
  release(b: Uint8Array): void {
    const ab = b.buffer as ArrayBuffer;
    const cls = ab.byteLength;
    if (b.byteOffset !== 0 || cls < MIN_CLASS || (cls & (cls - 1)) !== 0) return;
    if (this.pooled + cls > this.maxPooledBytes) return;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(ab);
    this.pooled += cls;
  }
}
