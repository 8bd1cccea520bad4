import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ByteQueue } from "../../src/nbd/bytequeue.ts";

describe("ByteQueue", () => {
  it("returns a view inside one chunk and a copy across chunks", () => {
    const q = new ByteQueue();
    const a = Buffer.from([1, 2, 3, 4]);
    q.push(a);
    q.push(Buffer.from([5, 6]));
    const v = q.take(2);
    expect([...v]).toEqual([1, 2]);
    expect(v.buffer).toBe(a.buffer); // no copy
    expect([...q.take(3)]).toEqual([3, 4, 5]);
    expect(q.length).toBe(1);
    expect(q.skip(10)).toBe(1);
    expect(q.length).toBe(0);
    expect(q.take(0).length).toBe(0);
    expect(() => q.take(1)).toThrow(RangeError);
  });

  it("accepts plain Uint8Array chunks and ignores empty ones", () => {
    const q = new ByteQueue();
    q.push(new Uint8Array(0));
    q.push(new Uint8Array([9, 8, 7]).subarray(1));
    expect([...q.take(2)]).toEqual([8, 7]);
  });

  fcTest.prop([fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(40), { maxLength: 40 }), fc.array(fc.tuple(fc.boolean(), fc.nat(50)), { maxLength: 60 })])(
    "any split of the input and any sequence of take/skip yields the input in order",
    (bytes, cuts, ops) => {
      const q = new ByteQueue();
      let pos = 0;
      for (const c of cuts) {
        q.push(bytes.subarray(pos, Math.min(bytes.length, pos + c)));
        pos = Math.min(bytes.length, pos + c);
      }
      q.push(bytes.subarray(pos));
      let at = 0;
      for (const [isSkip, n] of ops) {
        if (isSkip) {
          const k = q.skip(n);
          expect(k).toBe(Math.min(n, bytes.length - at));
          at += k;
        } else if (n <= q.length) {
          expect([...q.take(n)]).toEqual([...bytes.subarray(at, at + n)]);
          at += n;
        }
        expect(q.length).toBe(bytes.length - at);
      }
    },
  );
});
