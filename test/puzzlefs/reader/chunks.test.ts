import { afterEach, describe, expect, it } from "vitest";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { BlobStore } from "../../../src/oci/blobs.ts";
import { ChunkCache } from "../../../src/puzzlefs/reader/chunks.ts";
import { fsVerityHex } from "../../../src/puzzlefs/verity.ts";
import { FIXTURES, blobPath, sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

async function store(...blobs: Uint8Array[]): Promise<[BlobStore, string[]]> {
  const s = new BlobStore(tmp.make());
  const hexes = [];
  for (const b of blobs) hexes.push((await s.put(b)).hex);
  return [s, hexes];
}
const blob = (n: number, fill: number) => new Uint8Array(n).fill(fill);

async function code(p: Promise<unknown>): Promise<PfsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    return e as PfsError;
  }
  throw new Error("expected a rejection");
}

describe("reader/chunks ChunkCache", () => {
  it("LRU with a byte cap: a hit refreshes an entry, the least recently used goes first", async () => {
    const [s, [a, b, c]] = await store(blob(100, 1), blob(100, 2), blob(100, 3));
    const cache = new ChunkCache(s, { maxBytes: 250 });
    await cache.get(a!, false);
    await cache.get(b!, false);
    await cache.get(a!, false); // a is now most recent
    await cache.get(c!, false); // evicts b
    expect([cache.size, cache.stats.bytes, cache.stats.evictions]).toEqual([2, 200, 1]);
    const opens = s.stats.opens;
    await cache.get(a!, false);
    expect(s.stats.opens).toBe(opens);
    await cache.get(b!, false);
    expect(s.stats.opens).toBe(opens + 1);
  });

  it("an entry larger than the cap is served but not kept", async () => {
    const [s, [a]] = await store(blob(1000, 1));
    const cache = new ChunkCache(s, { maxBytes: 500 });
    expect((await cache.get(a!, false)).read(10, 3)).toEqual(blob(3, 1));
    expect([cache.size, cache.stats.bytes]).toEqual([0, 0]);
  });

  it("concurrent gets share one load; failures are not cached", async () => {
    const [s, [a]] = await store(blob(100, 1));
    const cache = new ChunkCache(s);
    const all = await Promise.all([cache.get(a!, false), cache.get(a!, false), cache.get(a!, false)]);
    expect(all[0]).toBe(all[2]);
    expect([cache.stats.loads, cache.stats.shared, s.stats.opens]).toEqual([1, 2, 1]);
    const [s2, [b]] = await store(blob(64, 9));
    const good = readFileSync(blobPath(join(s2.dir, "../.."), b!));
    rmSync(blobPath(join(s2.dir, "../.."), b!));
    const c2 = new ChunkCache(s2);
    const e = await Promise.allSettled([c2.get(b!, false), c2.get(b!, false)]);
    expect(e.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    writeFileSync(blobPath(join(s2.dir, "../.."), b!), good);
    expect((await c2.get(b!, false)).size).toBe(64);
  });

  it("checks the manifest's size, the blob size limit and (when pinned) fs-verity before handing bytes out", async () => {
    const data = blob(100, 1);
    const [s, [a]] = await store(data);
    expect((await code(new ChunkCache(s, { blobSizes: new Map([[a!, 99]]) }).get(a!, false))).message).toMatch(/size differs from its descriptor: expected 99, got 100/);
    expect((await code(new ChunkCache(s, { maxBlobBytes: 50 }).get(a!, false))).code).toBe(ErrorCode.LIMIT);
    const ok = new ChunkCache(s, { verity: new Map([[a!, fsVerityHex(data)]]) });
    expect((await ok.get(a!, false)).size).toBe(100);
    const bad = await code(new ChunkCache(s, { verity: new Map([[a!, "00".repeat(32)]]) }).get(a!, false));
    expect([bad.code, bad.message]).toEqual([ErrorCode.DIGEST, `chunk blob sha256:${a}: fs-verity mismatch: expected ${"00".repeat(32)}, got ${fsVerityHex(data)}`]);
  });

  it("compressed blobs are read through the seek table, and a non-seekable blob flagged compressed is a FORMAT error", async () => {
    const z = readFileSync(join(FIXTURES, "SekienAkashita.zeekstd.zst"));
    const jpg = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));
    const [s, [h, raw]] = await store(z, jpg);
    const cache = new ChunkCache(s);
    const c = await cache.get(h!, true);
    expect([c.size, c.cost >= z.length]).toEqual([109466, true]);
    expect(Buffer.from(c.read(5000, 100)).equals(jpg.subarray(5000, 5100))).toBe(true);
    expect(cache.stats.framesDecoded).toBe(1);
    expect(sha256hex(jpg)).toBe(raw);
    expect((await code(cache.get(raw!, true))).message).toMatch(new RegExp(`^chunk blob sha256:${raw} @0x[0-9a-f]+: bad seekable magic`));
  });
});
