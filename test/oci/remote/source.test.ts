import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { canonicalJsonBytes } from "../../../src/oci/json.ts";
import { DiskCache } from "../../../src/oci/remote/cache.ts";
import { parseRemoteRef } from "../../../src/oci/remote/ref.ts";
import { openRemoteImage, type RemoteImageOptions, type RemoteImageSource } from "../../../src/oci/remote/source.ts";
import { openImage, type PuzzleImage } from "../../../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../../../src/puzzlefs/reader/path.ts";
import { fsVerityHex } from "../../../src/puzzlefs/verity.ts";
import { fixtureDir, sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../../helpers/registry-stub.ts";
import { I, rootfs, writeImage } from "../../helpers/test-image.ts";

const tmp = tmpDirs("pfs-remote-");
let s: StubRegistry;
const sources: RemoteImageSource[] = [];
const MIXED = "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052";
const MIXED_ROOTFS = "50eec5b51267163909d423ca15f0b912a09574901856a286663a6fb5c1a01d35";
/** A 40-file image, one 8 KiB chunk blob per file. */
let many: { dir: string; files: Buffer[]; chunkHex: string[] };

beforeAll(async () => {
  s = await startStubRegistry();
  s.addLayout("mixed", fixtureDir("mixed-noop"));
  s.addLayout("delta", fixtureDir("sekien-delta-noop"));
  const dir = tmp.make();
  const files = Array.from({ length: 40 }, () => randomBytes(8192));
  const chunkHex = files.map((f) => sha256hex(f));
  const inodes = [I.dir(1, files.map((_, i) => [`f${i}`, i + 2] as [string, number])), ...files.map((f, i) => I.file(i + 2, [{ hex: chunkHex[i]!, len: f.length }]))];
  await writeImage(dir, "many", rootfs([inodes]), files.map((f) => ({ data: new Uint8Array(f) })));
  s.addLayout("many", dir);
  many = { dir, files, chunkHex };
});
afterEach(() => {
  for (const x of sources.splice(0)) x.close();
  s.hook = null;
  s.blobBody = null;
  s.requests.length = 0;
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});

async function open(ref: string, opts: RemoteImageOptions = {}): Promise<{ src: RemoteImageSource; img: PuzzleImage }> {
  const src = await openRemoteImage(parseRemoteRef(ref), { plainHttp: true, deadlineMs: 3000, ...opts });
  sources.push(src);
  return { src, img: await openImage(src) };
}
const blobGets = () => s.requests.filter((r) => r.method === "GET" && r.path.includes("/blobs/")).map((r) => r.path.slice(-64));

describe("oci/remote/source: an image in a registry through the reader", () => {
  it("reads the same tree and bytes as the local layout (spec §6 values), pinned to the manifest digest", async () => {
    const { src, img } = await open(`oci://${s.host}/mixed:mixed`);
    const local = await openImage(fixtureDir("mixed-noop"), "mixed");
    expect(src.digest).toBe(MIXED);
    expect([img.dir, img.tag, img.manifest.hex, img.rootfs.hex]).toEqual([`oci://${s.host}/mixed`, "mixed", MIXED, MIXED_ROOTFS]);
    expect(src.label).toBe(`oci://${s.host}/mixed:mixed@sha256:${MIXED}`);
    for (let ino = 1; ino <= 10; ino++) {
      if (ino === 3) continue;
      expect(img.tree.node(ino)).toEqual(local.tree.node(ino));
    }
    const big = await img.tree.readFile(7, 0, 300000);
    expect(sha256hex(big)).toBe(sha256hex(await local.tree.readFile(7, 0, 300000)));
    // --digest pins work the same way: the manifest's fs-verity digest.
    const pin = fsVerityHex(local.manifest.bytes);
    const pinned = await open(`oci://${s.host}/mixed@sha256:${MIXED}`);
    expect((await openImage(pinned.src, { digest: pin })).manifest.hex).toBe(MIXED);
    await expect(openImage(pinned.src, { digest: "0".repeat(64) })).rejects.toMatchObject({ code: ErrorCode.DIGEST });
  });

  it("start-up fetches the manifest and the rootfs only; a read fetches just the chunks it needs", async () => {
    const { src, img } = await open(`oci://${s.host}/many:many`);
    expect(s.requests.map((r) => `${r.method} ${r.path.replace(/sha256:[0-9a-f]{64}/, "<digest>")}`)).toEqual(["GET /v2/many/manifests/many", "GET /v2/many/blobs/<digest>"]);
    expect(blobGets()).toEqual([img.rootfs.hex]);
    const ino = lookupPath(img.tree, "/f17");
    expect(Buffer.from(await img.tree.readFile(ino, 100, 50)).equals(many.files[17]!.subarray(100, 150))).toBe(true);
    expect(blobGets()).toEqual([img.rootfs.hex, many.chunkHex[17]]);
    expect(src.blobs.stats.fetches).toBe(2);
  });

  it("concurrent reads of one chunk cause one fetch", async () => {
    const { src, img } = await open(`oci://${s.host}/many:many`);
    const ino = lookupPath(img.tree, "/f3");
    // Bypass the in-memory chunk cache's own sharing: go to the blob source directly too.
    const reads = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => img.tree.readFile(ino, i * 100, 100)),
      ...Array.from({ length: 5 }, () => src.blobs.get(many.chunkHex[3]!)),
    ]);
    expect(Buffer.from(reads[0]!).equals(many.files[3]!.subarray(0, 100))).toBe(true);
    expect(blobGets().filter((h) => h === many.chunkHex[3]).length).toBe(1);
  });

  it("the tag is resolved once: pushing a new image under the tag does not change an open source", async () => {
    const { img } = await open(`oci://${s.host}/delta:test`);
    const before = img.manifest.hex;
    s.putManifest("delta", "test", s.manifest("delta", "test2")!);
    const again = await img.source.readManifest();
    expect(again.hex).toBe(before);
    const fresh = await open(`oci://${s.host}/delta:test`);
    expect(fresh.img.manifest.hex).not.toBe(before);
    expect(fresh.img.tree.nodeCount).toBe(3);
    s.putManifest("delta", "test", s.blobs.get(before)!);
  });

  it("the disk cache serves a second process, and an image pinned by digest opens and reads with the registry gone", async () => {
    const dir = tmp.make();
    const a = await open(`oci://${s.host}/many:many`, { cache: await DiskCache.open(dir) });
    const ino = lookupPath(a.img.tree, "/f5");
    await a.img.tree.readFile(ino, 0, 8192);
    s.requests.length = 0;
    s.hook = () => "drop"; // the registry is unreachable from now on
    const b = await open(`oci://${s.host}/many@sha256:${a.src.digest}`, { cache: await DiskCache.open(dir), deadlineMs: 300 });
    expect(Buffer.from(await b.img.tree.readFile(ino, 0, 8192)).equals(many.files[5]!)).toBe(true);
    expect(b.src.blobs.stats).toMatchObject({ fetches: 0, cacheHits: 2 }); // the rootfs and the chunk (the manifest came from the cache too)
    expect(s.requests).toEqual([]);
    // Uncached data fails within the deadline, as an I/O error naming the blob.
    const t0 = Date.now();
    const e = (await b.img.tree.readFile(lookupPath(b.img.tree, "/f6"), 0, 10).catch((x: unknown) => x)) as PfsError;
    expect(e).toBeInstanceOf(PfsError);
    expect(e.code).toBe(ErrorCode.IO);
    expect(e.message).toContain(`chunk blob sha256:${many.chunkHex[6]}`);
    expect(Date.now() - t0).toBeLessThan(5000);
    // The registry comes back: the same open image reads it.
    s.hook = null;
    expect(Buffer.from(await b.img.tree.readFile(lookupPath(b.img.tree, "/f6"), 0, 10)).equals(many.files[6]!.subarray(0, 10))).toBe(true);
  });

  it("a blob served with a flipped byte fails the read and is neither returned nor cached", async () => {
    const dir = tmp.make();
    const cache = await DiskCache.open(dir);
    const { img } = await open(`oci://${s.host}/many:many`, { cache });
    const victim = many.chunkHex[9]!;
    s.blobBody = (h, b) => (h === victim ? Uint8Array.from(b, (v, i) => (i === 4000 ? v ^ 0x80 : v)) : b);
    const ino = lookupPath(img.tree, "/f9");
    const e = (await img.tree.readFile(ino, 0, 8192).catch((x: unknown) => x)) as PfsError;
    expect([e.code, e.data.fileOffset]).toEqual([ErrorCode.DIGEST, 0]);
    expect(existsSync(cache.path(victim))).toBe(false);
    s.blobBody = null;
    expect(Buffer.from(await img.tree.readFile(ino, 0, 8192)).equals(many.files[9]!)).toBe(true);
    expect(existsSync(cache.path(victim))).toBe(true);
  });

  it("refuses an image index and a Docker-Content-Digest that does not match the body", async () => {
    const index = canonicalJsonBytes({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] });
    s.putManifest("mixed", "multi", index);
    await expect(open(`oci://${s.host}/mixed:multi`)).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED, message: expect.stringMatching(/is an image index/) });
    s.hook = (r) => (r.path.endsWith("/manifests/mixed") ? { status: 200, headers: { "docker-content-digest": `sha256:${"1".repeat(64)}` }, body: s.manifest("mixed", "mixed")! } : "pass");
    await expect(open(`oci://${s.host}/mixed:mixed`)).rejects.toMatchObject({ code: ErrorCode.DIGEST });
    s.hook = (r) => (r.path.includes("/manifests/sha256:") ? { status: 200, body: "{}" } : "pass");
    await expect(open(`oci://${s.host}/mixed@sha256:${MIXED}`)).rejects.toMatchObject({ code: ErrorCode.DIGEST });
  });

  it("prefetch fills the disk cache at low priority; a foreground read of a blob being prefetched joins that fetch", async () => {
    const cache = await DiskCache.open(tmp.make());
    const { src } = await open(`oci://${s.host}/many:many`, { cache });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const hex = many.chunkHex[20]!;
    s.hook = async (r) => {
      if (r.path.endsWith(hex)) await gate;
      return "pass" as const;
    };
    const pre = src.blobs.prefetch(hex);
    await new Promise((r) => setTimeout(r, 50));
    const fg = src.blobs.get(hex);
    release();
    await pre;
    expect(sha256hex(await fg)).toBe(hex);
    expect(blobGets().filter((h) => h === hex).length).toBe(1);
    expect(src.blobs.stats.shared).toBe(1);
    expect(await cache.has(hex)).toBe(true);
    const digest = createHash("sha256").update(many.files[20]!).digest("hex");
    expect(digest).toBe(hex);
  });
});
