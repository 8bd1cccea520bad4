import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { DiskCache } from "../../../src/oci/remote/cache.ts";
import { parseRemoteRef } from "../../../src/oci/remote/ref.ts";
import { openRemoteImage } from "../../../src/oci/remote/source.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { blobsUnder, prefetchPaths } from "../../../src/puzzlefs/reader/prefetch.ts";
import { fixtureDir, sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../../helpers/registry-stub.ts";
import { I, rootfs, writeImage } from "../../helpers/test-image.ts";

const tmp = tmpDirs("pfs-prefetch-");
let s: StubRegistry;
let dir: string;
const data = Array.from({ length: 6 }, () => randomBytes(4096));
const hex = data.map((d) => sha256hex(d));

beforeAll(async () => {
  // /etc/{a,b} (b shares a's chunk and has its own), /usr/lib/x, /usr/bin/y, /var/z
  dir = tmp.make();
  const c = (i: number) => ({ hex: hex[i]!, len: 4096 });
  const tree = [
    I.dir(1, [["etc", 2], ["usr", 3], ["var", 4]]),
    I.dir(2, [["a", 10], ["b", 11], ["sub", 5]]),
    I.dir(5, [["deep", 12]]),
    I.dir(3, [["lib", 6], ["bin", 7]]),
    I.dir(4, [["z", 15]]),
    I.dir(6, [["x", 13]]),
    I.dir(7, [["y", 14]]),
    I.file(10, [c(0)]),
    I.file(11, [c(0), c(1)]),
    I.file(12, [c(2)]),
    I.file(13, [c(3)]),
    I.file(14, [c(4)]),
    I.file(15, [c(5)]),
  ];
  await writeImage(dir, "p", rootfs([tree]), data.map((d) => ({ data: new Uint8Array(d) })));
  s = await startStubRegistry();
  s.addLayout("p", dir);
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});

describe("reader/prefetch", () => {
  it("collects the distinct chunk blobs of files under the paths, recursively, skipping missing paths", async () => {
    const img = await openImage(dir, "p");
    expect(blobsUnder(img, ["/etc", "/usr/lib", "/nope"])).toEqual({ files: 4, blobs: expect.arrayContaining([hex[0], hex[1], hex[2], hex[3]]) });
    expect(blobsUnder(img, ["/etc", "/usr/lib"]).blobs).toHaveLength(4);
    expect(blobsUnder(img, ["/usr/bin/y"])).toEqual({ files: 1, blobs: [hex[4]] });
  });

  it("a local image has nothing to prefetch: no blob is read", async () => {
    const img = await openImage(dir, "p");
    const before = img.layout.blobs.stats.opens;
    expect(await prefetchPaths(img)).toEqual({ files: 4, blobs: 4, failed: 0 });
    expect(img.layout.blobs.stats.opens).toBe(before);
  });

  it("a registry image gets exactly the default paths' blobs into the disk cache, in the background lane", async () => {
    const cache = await DiskCache.open(tmp.make());
    const src = await openRemoteImage(parseRemoteRef(`oci://${s.host}/p:p`), { plainHttp: true, cache });
    try {
      const img = await openImage(src);
      s.requests.length = 0;
      const r = await prefetchPaths(img);
      expect(r).toEqual({ files: 4, blobs: 4, failed: 0 });
      const fetched = s.requests.filter((q) => q.path.includes("/blobs/")).map((q) => q.path.slice(-64));
      expect(new Set(fetched)).toEqual(new Set([hex[0], hex[1], hex[2], hex[3]]));
      for (const h of [hex[0], hex[1], hex[2], hex[3]]) expect(await cache.has(h!)).toBe(true);
      for (const h of [hex[4], hex[5]]) expect(await cache.has(h!)).toBe(false);
      // Nothing went to memory; a second run finds everything cached and fetches nothing.
      expect(img.tree.chunks.size).toBe(0);
      s.requests.length = 0;
      await prefetchPaths(img);
      expect(s.requests).toEqual([]);
      // Failures are counted, not thrown; an abort stops it.
      s.hook = (q) => (q.path.endsWith(hex[4]!) ? { status: 404 } : "pass");
      expect(await prefetchPaths(img, { paths: ["/usr/bin", "/var"] })).toEqual({ files: 2, blobs: 2, failed: 1 });
      s.hook = null;
      const ac = new AbortController();
      ac.abort();
      s.requests.length = 0;
      await prefetchPaths(img, { paths: ["/usr/bin"], signal: ac.signal });
      expect(s.requests).toEqual([]);
    } finally {
      src.close();
    }
  });
});
