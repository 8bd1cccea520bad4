import { describe, expect, it } from "vitest";
import { BufferPool } from "../../src/nbd/bufpool.ts";

describe("BufferPool", () => {
  it("rounds sizes up to power-of-two classes of at least 4 KiB", () => {
    expect(BufferPool.classOf(1)).toBe(4096);
    expect(BufferPool.classOf(4096)).toBe(4096);
    expect(BufferPool.classOf(4097)).toBe(8192);
    expect(BufferPool.classOf(256 * 1024)).toBe(256 * 1024);
    expect(BufferPool.classOf(32 * 1024 * 1024)).toBe(32 * 1024 * 1024);
  });

  it("hands back exactly n bytes and reuses released memory of the same class", () => {
    const p = new BufferPool();
    const a = p.acquire(5000);
    expect(a.length).toBe(5000);
    expect(a.buffer.byteLength).toBe(8192);
    a.fill(7);
    p.release(a);
    expect(p.idleBytes).toBe(8192);
    const b = p.acquire(6000);
    expect(b.buffer).toBe(a.buffer);
    expect(p.idleBytes).toBe(0);
    const c = p.acquire(6000); // pool empty: a new buffer
    expect(c.buffer).not.toBe(a.buffer);
  });

  it("keeps at most maxPooledBytes idle and ignores buffers it did not make", () => {
    const p = new BufferPool(16384);
    const bufs = [p.acquire(8192), p.acquire(8192), p.acquire(8192)];
    for (const b of bufs) p.release(b);
    expect(p.idleBytes).toBe(16384);
    p.release(Buffer.alloc(10)); // a slice of Node's shared pool: not ours
    p.release(Buffer.from(new ArrayBuffer(12288))); // not a power of two
    p.release(Buffer.from(new ArrayBuffer(8192), 4096)); // not at offset 0
    expect(p.idleBytes).toBe(16384);
  });
});
