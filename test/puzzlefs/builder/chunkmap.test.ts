import { describe, expect, it } from "vitest";
import { ChunkMapper } from "../../../src/puzzlefs/builder/chunkmap.ts";
import type { StreamFile } from "../../../src/puzzlefs/builder/walk.ts";

const files = (...sizes: number[]): StreamFile[] =>
  sizes.map((size, i) => ({ path: Buffer.from(`f${i}`), size, ino: BigInt(i + 2), chunks: [] }));
const d = (n: number) => new Uint8Array(32).fill(n);
const slices = (f: StreamFile) => f.chunks.map((c) => [c.blob.digest[0], Number(c.blob.offset), Number(c.len), c.blob.compressed]);

describe("ChunkMapper (spec §3.4)", () => {
  it("maps the mixed-noop stream: small files share chunk 0, the big file spans four chunks", () => {
    const fs = files(6, 3, 300000, 0);
    const m = new ChunkMapper(fs);
    [152560, 72716, 58762, 15971].forEach((len, i) => m.add(len, d(i), false));
    expect(m.complete).toBe(true);
    expect(slices(fs[0]!)).toEqual([[0, 0, 6, false]]);
    expect(slices(fs[1]!)).toEqual([[0, 6, 3, false]]);
    expect(slices(fs[2]!)).toEqual([[0, 9, 152551, false], [1, 0, 72716, false], [2, 0, 58762, false], [3, 0, 15971, false]]);
    expect(fs[3]!.chunks).toEqual([]);
  });

  it("skips empty files anywhere, and carries the compressed flag", () => {
    const fs = files(0, 5, 0, 0, 5, 0);
    const m = new ChunkMapper(fs);
    m.add(7, d(1), true);
    expect(m.complete).toBe(false);
    m.add(3, d(2), true);
    expect(m.complete).toBe(true);
    expect(slices(fs[1]!)).toEqual([[1, 0, 5, true]]);
    expect(slices(fs[4]!)).toEqual([[1, 5, 2, true], [2, 0, 3, true]]);
    expect([0, 2, 3, 5].map((i) => fs[i]!.chunks.length)).toEqual([0, 0, 0, 0]);
  });

  it("files may be appended while mapping (the walk runs ahead of the stream); empty ones still get no slices", () => {
    const fs = files(5);
    const m = new ChunkMapper(fs);
    m.add(5, d(1), false);
    expect(m.complete).toBe(true);
    fs.push(...files(0, 3, 0).map((f, i) => ({ ...f, ino: BigInt(10 + i) })));
    expect(m.complete).toBe(false);
    m.add(3, d(2), false);
    expect(m.complete).toBe(true);
    expect(fs.map(slices)).toEqual([[[1, 0, 5, false]], [], [[2, 0, 3, false]], []]);
  });

  it("an all-empty stream is complete at once; bytes past the end are an internal error", () => {
    expect(new ChunkMapper(files(0, 0)).complete).toBe(true);
    const m = new ChunkMapper(files(4));
    expect(() => m.add(5, d(0), false)).toThrow(/runs past the end of the data stream/);
  });
});
