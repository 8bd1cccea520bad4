import { afterEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiskCache, defaultCacheDir } from "../../../src/oci/remote/cache.ts";
import { sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";

const tmp = tmpDirs("pfs-cache-");
afterEach(() => tmp.cleanup());

const blob = (n: number) => {
  const b = new Uint8Array(randomBytes(n));
  return { bytes: b, hex: sha256hex(b) };
};

describe("oci/remote/cache", () => {
  it("defaults to $XDG_CACHE_HOME/puzzlefs, else ~/.cache/puzzlefs", () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/x/cache" }, "/home/u")).toBe("/x/cache/puzzlefs");
    expect(defaultCacheDir({}, "/home/u")).toBe("/home/u/.cache/puzzlefs");
  });

  it("stores blobs by digest (as `sha256sum` names them) and gives them back across instances (restart)", async () => {
    const dir = tmp.make();
    const a = await DiskCache.open(dir, 1 << 20);
    const b = blob(1000);
    expect(await a.get(b.hex)).toBeNull();
    await a.put(b.hex, b.bytes);
    const path = join(dir, "blobs", "sha256", b.hex);
    expect(execFileSync("sha256sum", [path], { encoding: "utf8" }).split(" ")[0]).toBe(b.hex);
    const again = await DiskCache.open(dir, 1 << 20);
    expect(again.bytes).toBe(1000);
    expect(Buffer.from((await again.get(b.hex))!).equals(Buffer.from(b.bytes))).toBe(true);
    expect(await again.has(b.hex)).toBe(true);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  });

  it("a damaged cache file is deleted and reported as a miss, never returned", async () => {
    const dir = tmp.make();
    const c = await DiskCache.open(dir, 1 << 20);
    const b = blob(500);
    await c.put(b.hex, b.bytes);
    const path = c.path(b.hex);
    const bad = readFileSync(path);
    bad[10] ^= 1;
    writeFileSync(path, bad);
    expect(await c.get(b.hex)).toBeNull();
    expect(existsSync(path)).toBe(false);
    expect(c.stats.corrupt).toBe(1);
    await c.put(b.hex, b.bytes);
    expect(await c.get(b.hex, 499)).toBeNull(); // wrong expected size: dropped too
    expect(c.stats.corrupt).toBe(2);
  });

  it("evicts least recently used blobs (by mtime; a hit refreshes it) down to 90 % of the cap", async () => {
    const dir = tmp.make();
    const c = await DiskCache.open(dir, 10_000);
    const bs = Array.from({ length: 4 }, () => blob(2000));
    const t0 = Date.now() / 1000 - 3600;
    for (const [i, b] of bs.entries()) {
      await c.put(b.hex, b.bytes);
      utimesSync(c.path(b.hex), t0 + i * 60, t0 + i * 60);
    }
    await c.get(bs[0]!.hex); // oldest file becomes the most recent
    await new Promise((r) => setTimeout(r, 50)); // the touch is asynchronous
    expect(statSync(c.path(bs[0]!.hex)).mtimeMs).toBeGreaterThan((t0 + 600) * 1000);
    const extra = blob(3000);
    await c.put(extra.hex, extra.bytes); // 11000 > 10000: evict to ≤ 9000
    await c.idle();
    const left = new Set(readdirSync(join(dir, "blobs", "sha256")));
    expect(left.has(bs[1]!.hex)).toBe(false);
    expect(left.has(bs[0]!.hex)).toBe(true);
    expect(left.has(extra.hex)).toBe(true);
    expect(c.bytes).toBeLessThanOrEqual(9000);
    expect(c.stats.evicted).toBe(1);
  });

  it("two caches on one directory see each other's blobs and tolerate each other's evictions", async () => {
    const dir = tmp.make();
    const a = await DiskCache.open(dir, 20_000);
    const b = await DiskCache.open(dir, 20_000);
    const xs = Array.from({ length: 30 }, () => blob(1000));
    // Interleaved writes from both, and evictions racing on the same files.
    await Promise.all(xs.map((x, i) => (i % 2 ? a : b).put(x.hex, x.bytes)));
    await Promise.all([a.idle(), b.idle()]);
    await Promise.all([a.evict(), b.evict(), a.evict()]);
    const files = readdirSync(join(dir, "blobs", "sha256"));
    const total = files.reduce((s, f) => s + statSync(join(dir, "blobs", "sha256", f)).size, 0);
    expect(total).toBeLessThanOrEqual(20_000);
    for (const f of files) {
      const got = await a.get(f);
      expect(got && sha256hex(got)).toBe(f);
    }
    // A blob b evicted is just a miss for a.
    const gone = xs.find((x) => !files.includes(x.hex))!;
    expect(await a.get(gone.hex)).toBeNull();
  });

  it("does not keep blobs larger than half the cap, nor anything with a cap of 0; sweeps stale temp files", async () => {
    const dir = tmp.make();
    const c = await DiskCache.open(dir, 1000);
    const big = blob(600);
    await c.put(big.hex, big.bytes);
    expect(await c.has(big.hex)).toBe(false);
    const stale = join(dir, "tmp", "dead-123");
    writeFileSync(stale, "x");
    utimesSync(stale, Date.now() / 1000 - 7200, Date.now() / 1000 - 7200);
    await c.evict();
    expect(existsSync(stale)).toBe(false);
    const off = await DiskCache.open(tmp.make(), 0);
    const small = blob(10);
    await off.put(small.hex, small.bytes);
    expect(await off.has(small.hex)).toBe(false);
  });
});
