import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { ChunkPool, SLAB_BYTES } from "../../../src/puzzlefs/builder/chunk-pool.ts";
import type { Slab } from "../../../src/puzzlefs/builder/fastcdc.ts";
import { Compression, encodeBlob } from "../../../src/puzzlefs/builder/put-blob.ts";
import { sha256hex } from "../../helpers/oci-fixtures.ts";
import { randomBytes, textBytes } from "../../helpers/torture-tree.ts";
import { removeTree, tempDir } from "../../helpers/tree.ts";

const dirs: string[] = [];
const pools: ChunkPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
  for (const d of dirs.splice(0)) removeTree(d);
});
const scratch = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
const pool = (dir: string, compression: Compression, workers: number) => {
  const p = new ChunkPool({ ociDir: dir, compression }, workers);
  pools.push(p);
  return p;
};

/** Chunks of mixed kinds and sizes. */
const chunks = (): Uint8Array[] =>
  Array.from({ length: 24 }, (_, i) => new Uint8Array(i % 3 === 0 ? randomBytes(20_000 + i * 997, i) : textBytes(16_384 + i * 4099, i)));

/** Pack chunks into slabs (as SlabCdc hands them out: pieces of one SLAB_BYTES buffer, a gap before each). */
function slabsOf(input: Uint8Array[]): Slab[] {
  const out: Slab[] = [];
  let cur: Slab | undefined;
  let at = 0;
  for (const c of input) {
    if (!cur || at + 13 + c.length > SLAB_BYTES) {
      cur = { buffer: new ArrayBuffer(SLAB_BYTES), chunks: [] };
      out.push(cur);
      at = 0;
    }
    at += 13;
    new Uint8Array(cur.buffer).set(c, at);
    cur.chunks.push({ start: at, length: c.length });
    at += c.length;
  }
  return out;
}
const putAll = (p: ChunkPool, input: Uint8Array[]) => slabsOf(input).flatMap((s) => p.putSlab(s));

describe("ChunkPool", () => {
  it("2 worker threads give exactly what put_blob gives inline, for every chunk, and store every blob", async () => {
    for (const compression of [Compression.NOOP, Compression.ZSTD]) {
      const dir = scratch();
      const p = pool(dir, compression, 2);
      expect(p.size).toBe(2);
      const input = [...chunks(), ...chunks().reverse()];
      expect(slabsOf(input).length).toBeGreaterThan(1);
      const expected = input.map((c) => encodeBlob(c, compression));
      const got = await Promise.all(putAll(p, input));
      expect(got.map((r) => [r.hex, r.size, r.compressed, Buffer.from(r.verity).toString("hex")])).toEqual(
        expected.map((e) => [sha256hex(e.stored), e.stored.length, e.compressed, Buffer.from(e.verity).toString("hex")]),
      );
      expect(readdirSync(join(dir, "blobs/sha256")).sort()).toEqual([...new Set(got.map((r) => r.hex))].sort());
      if (compression === Compression.ZSTD) expect(new Set(got.map((r) => r.compressed))).toEqual(new Set([true, false]));
    }
  });

  it("each chunk of a slab gets its own result, and one failing chunk fails alone", async () => {
    const dir = scratch();
    const input = Array.from({ length: 40 }, (_, i) => new Uint8Array(textBytes(65_536 + i, 100 + i)));
    // Chunk 17's blob name is taken by other bytes: only that put may fail (EXISTS).
    const bad = sha256hex(input[17]!);
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    writeFileSync(join(dir, "blobs/sha256", bad), "not these bytes");
    for (const workers of [0, 2]) {
      const p = pool(dir, Compression.NOOP, workers);
      const settled = await Promise.allSettled(putAll(p, input));
      settled.forEach((r, i) => {
        if (i === 17) {
          expect(r.status).toBe("rejected");
          expect(((r as PromiseRejectedResult).reason as PfsError).code).toBe(ErrorCode.EXISTS);
        } else {
          expect(r.status, `chunk ${i}`).toBe("fulfilled");
          expect((r as PromiseFulfilledResult<{ hex: string }>).value.hex).toBe(sha256hex(input[i]!));
        }
      });
      // The pool keeps working after a failed chunk.
      const [again] = putAll(p, [new Uint8Array(textBytes(1000, 7))]);
      expect((await again!).hex).toBe(sha256hex(textBytes(1000, 7)));
    }
  });

  it("transfers the slab's buffer to the worker and reuses it when it comes back", async () => {
    for (const workers of [0, 1]) {
      const p = pool(scratch(), Compression.NOOP, workers);
      const a = new Uint8Array(textBytes(5000, 1));
      const [slab] = slabsOf([a]);
      const buffer = slab!.buffer;
      const [r] = p.putSlab(slab!);
      if (workers > 0) expect(buffer.byteLength).toBe(0); // detached: transferred, not copied
      expect((await r!).hex).toBe(sha256hex(a));
      // The next slab is that buffer again (its bytes are still there), not a fresh one.
      const again = new Uint8Array(p.acquireSlab());
      expect(again.length).toBe(SLAB_BYTES);
      expect(Buffer.from(again.subarray(13, 5013)).equals(Buffer.from(a))).toBe(true);
      // An empty slab (the end of an empty stream) stores nothing and gives its buffer back.
      expect(p.putSlab({ buffer: again.buffer as ArrayBuffer, chunks: [] })).toEqual([]);
      expect(p.acquireSlab()).toBe(again.buffer);
    }
  });

  it("errors in a worker come back as PfsError with their code; close() waits for what was sent", async () => {
    const dir = scratch();
    mkdirSync(join(dir, "blobs"));
    writeFileSync(join(dir, "blobs/sha256"), "a file where the blob directory belongs");
    for (const workers of [0, 2]) {
      const p = pool(dir, Compression.NOOP, workers);
      const err = await putAll(p, [new Uint8Array(textBytes(1000, 3))])[0]!.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PfsError);
      expect((err as PfsError).code).toBe(ErrorCode.IO);
      expect((err as PfsError).message).toMatch(/^blob sha256:[0-9a-f]{64}: ENOTDIR/);
    }
    const ok = scratch();
    const p = pool(ok, Compression.ZSTD, 2);
    const pending = putAll(p, [1, 2, 3, 4].map((i) => new Uint8Array(textBytes(50_000, i))));
    await p.close();
    const settled = await Promise.allSettled(pending);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    expect(readdirSync(join(ok, "blobs/sha256"))).toHaveLength(4);
    await expect(putAll(p, [new Uint8Array(1)])[0]).rejects.toThrow(/after close/);
  });
});
