/**
 * Faults between us and the real registry (docker-registry 2.8 on
 * 127.0.0.1, plain HTTP): the registry stopped mid-read and brought back, a
 * proxy that flips a byte of a blob, a blob removed by garbage collection
 * after its tag moved, and two processes sharing one cache directory. Also
 * laziness measured where we cannot fool ourselves: bytes the registry
 * served, counted by a proxy in front of it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../src/common/errors.ts";
import { OciLayout } from "../src/oci/layout.ts";
import { DiskCache } from "../src/oci/remote/cache.ts";
import { pushImage } from "../src/oci/remote/push.ts";
import { parseRemoteRef } from "../src/oci/remote/ref.ts";
import { openRemoteImage, type RemoteImageSource } from "../src/oci/remote/source.ts";
import { openImage, type PuzzleImage } from "../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../src/puzzlefs/reader/path.ts";
import { spawnCliAsync } from "../test/helpers/run-cli.ts";
import { I, rootfs, writeImage } from "../test/helpers/test-image.ts";
import { startProxy, startRegistry, type CountingProxy, type RegistryServer } from "./lib/registry.ts";

const work = mkdtempSync(join(tmpdir(), "pfs-registry-faults-"));
const FIX = join(import.meta.dirname, "..", "test", "fixtures", "oci");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
let reg: RegistryServer;
let proxy: CountingProxy;
const sources: RemoteImageSource[] = [];

/** 200 small files (one 16 KiB chunk each) and /big: 2 MiB in 32 chunks of 64 KiB. */
const small = Array.from({ length: 200 }, () => randomBytes(16384));
const bigChunks = Array.from({ length: 32 }, () => randomBytes(65536));
const big = Buffer.concat(bigChunks);
let imageDir: string;
let digest: string;
let storedBytes = 0;

beforeAll(async () => {
  imageDir = join(work, "image");
  const c = (b: Buffer) => ({ hex: sha(b), len: b.length });
  const inodes = [
    I.dir(1, [...small.map((_, i) => [`f${i}`, i + 10] as [string, number]), ["big", 2]]),
    I.file(2, bigChunks.map(c)),
    ...small.map((b, i) => I.file(i + 10, [c(b)])),
  ];
  await writeImage(imageDir, "t", rootfs([inodes]), [...small, ...bigChunks].map((b) => ({ data: new Uint8Array(b) })));
  reg = await startRegistry({ dir: join(work, "reg") });
  proxy = await startProxy(reg.host);
  const r = await pushImage(await OciLayout.open(imageDir), "t", parseRemoteRef(`oci://${reg.host}/faults/img:t`), { plainHttp: true });
  digest = r.digest.slice(7);
  const m = JSON.parse(Buffer.from(r.manifestBytes).toString()) as { layers: Array<{ size: number }>; config: { size: number } };
  storedBytes = r.size + m.config.size + m.layers.reduce((s, l) => s + l.size, 0);
});
afterAll(async () => {
  for (const s of sources) s.close();
  await proxy?.stop();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function open(host: string, ref: string, cacheDir: string | null, deadlineMs = 3000): Promise<{ src: RemoteImageSource; img: PuzzleImage }> {
  const src = await openRemoteImage(parseRemoteRef(`oci://${host}/${ref}`), { plainHttp: true, deadlineMs, cache: cacheDir ? await DiskCache.open(cacheDir) : null });
  sources.push(src);
  return { src, img: await openImage(src) };
}
const read = (img: PuzzleImage, path: string) => {
  const ino = lookupPath(img.tree, path);
  return img.tree.readFile(ino, 0, img.tree.node(ino).size);
};
async function failure(p: Promise<unknown>): Promise<PfsError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PfsError);
  return e as PfsError;
}

describe("registry faults", () => {
  it("laziness: opening the image and reading one file costs the registry < 5 % of the image's bytes (counted by a proxy)", async () => {
    proxy.reset();
    const { img } = await open(proxy.host, "faults/img:t", null);
    expect(Buffer.from(await read(img, "/f17")).equals(small[17]!)).toBe(true);
    const rootfsSize = img.rootfs.size;
    expect(proxy.blobBytes).toBe(rootfsSize + 16384);
    expect(proxy.bytes / storedBytes).toBeLessThan(0.05);
    console.log(`laziness: ${proxy.bytes} of ${storedBytes} image bytes served (${((100 * proxy.bytes) / storedBytes).toFixed(2)} %)`);
  });

  it("registry stopped mid-read: cached data keeps working (same process, and a new one pinned by digest), uncached reads fail within the deadline, service resumes when it is back", async () => {
    const cache = join(work, "cache-stop");
    const { img } = await open(reg.host, "faults/img:t", cache, 2000);
    for (let i = 0; i < 20; i++) expect(Buffer.from(await read(img, `/f${i}`)).equals(small[i]!)).toBe(true);
    await reg.stop();
    try {
      for (let i = 0; i < 20; i++) expect(Buffer.from(await read(img, `/f${i}`)).equals(small[i]!)).toBe(true);
      const restarted = await open(reg.host, `faults/img@sha256:${digest}`, cache, 2000);
      expect(Buffer.from(await read(restarted.img, "/f5")).equals(small[5]!)).toBe(true);
      const t0 = Date.now();
      const e = await failure(read(img, "/f150"));
      const ms = Date.now() - t0;
      expect(e.code).toBe(ErrorCode.IO);
      expect(e.message).toMatch(new RegExp(`^chunk blob sha256:${sha(small[150]!)} from oci://${reg.host}/faults/img: ${reg.host} did not answer within 2\\.0 s \\(last: ECONNREFUSED`));
      expect(ms).toBeGreaterThanOrEqual(1900);
      expect(ms).toBeLessThan(4000);
      // Opening by tag needs the registry: it fails the same way, it does not hang.
      expect((await failure(open(reg.host, "faults/img:t", cache, 1000))).code).toBe(ErrorCode.IO);
    } finally {
      await reg.start();
    }
    expect(Buffer.from(await read(img, "/f150")).equals(small[150]!)).toBe(true);
  });

  it("a proxy flipping one byte of a blob: the read fails (DIGEST), nothing wrong is returned or cached; the same read works once the path is clean", async () => {
    const cacheDir = join(work, "cache-flip");
    const { img } = await open(proxy.host, "faults/img:t", cacheDir);
    const victim = sha(bigChunks[7]!);
    proxy.flip = { match: (p) => p.endsWith(victim), offset: 1234 };
    const e = await failure(read(img, "/big"));
    expect(e.code).toBe(ErrorCode.DIGEST);
    expect(e.message).toContain(`expected ${victim}`);
    expect(e.data.fileOffset).toBe(7 * 65536);
    const cache = await DiskCache.open(cacheDir);
    expect(existsSync(cache.path(victim))).toBe(false);
    expect(existsSync(cache.path(sha(bigChunks[6]!)))).toBe(true);
    // The CLI: exit 2, no byte of the file on stdout.
    const cli = await spawnCliAsync(["cat", `oci://${proxy.host}/faults/img:t`, "/big", "--insecure-registry", "--cache-dir", join(work, "cache-flip-cli")]);
    expect([cli.code, cli.stdout.length]).toEqual([2, 0]);
    expect(cli.stderr).toMatch(new RegExp(`sha256 mismatch: expected ${victim}`));
    proxy.flip = null;
    expect(Buffer.from(await read(img, "/big")).equals(big)).toBe(true);
    expect(existsSync(cache.path(victim))).toBe(true);
  });

  it("a blob deleted by garbage collection after its tag moved: a clear error naming the digest", async () => {
    const layouts = join(work, "gc-layouts");
    cpSync(join(FIX, "mixed-noop"), join(layouts, "mixed"), { recursive: true });
    cpSync(join(FIX, "sekien-noop"), join(layouts, "sekien"), { recursive: true });
    const a = await pushImage(await OciLayout.open(join(layouts, "mixed")), "mixed", parseRemoteRef(`oci://${reg.host}/gc/img:live`), { plainHttp: true });
    const served = await open(reg.host, "gc/img:live", null, 2000);
    expect(served.src.digest).toBe(a.digest.slice(7));
    await pushImage(await OciLayout.open(join(layouts, "sekien")), "test", parseRemoteRef(`oci://${reg.host}/gc/img:live`), { plainHttp: true });
    await reg.stop();
    let gcOut: string;
    try {
      gcOut = await reg.garbageCollect(["--delete-untagged"]);
    } finally {
      await reg.start();
    }
    const bigHexes = served.img.tree.fileBlobs(lookupPath(served.img.tree, "/dir/big.bin")).map((b) => b.hex);
    for (const h of bigHexes) expect(gcOut).toContain(h);
    const e = await failure(read(served.img, "/dir/big.bin"));
    expect(e.code).toBe(ErrorCode.NOT_FOUND);
    const named = /^chunk blob sha256:([0-9a-f]{64}): not found in (\S+) \(BLOB_UNKNOWN: blob unknown to registry\)$/.exec(e.message);
    expect(named?.[2]).toBe(`oci://${reg.host}/gc/img`);
    expect(bigHexes).toContain(named?.[1]);
    expect(e.hint).toMatch(/garbage-collected after its tag moved/);
    // Opening the old digest afresh: the manifest itself is gone, and the message names it.
    const cli = await spawnCliAsync(["ls", `oci://${reg.host}/gc/img@${a.digest}`, "--insecure-registry", "--cache-max", "0"]);
    expect([cli.code, cli.stderr.split("\n")[0]]).toEqual([2, `puzzlefs: manifest oci://${reg.host}/gc/img@${a.digest}: not found`]);
  });

  it("two processes share one cache directory at once (with evictions racing), and a third reads from it with the registry down", async () => {
    const cacheDir = join(work, "cache-shared");
    const ref = `oci://${reg.host}/faults/img@sha256:${digest}`;
    const common = ["--insecure-registry", "--cache-dir", cacheDir];
    // 1 MiB cap < the 2 MiB file: both processes evict while the other reads.
    const tight = await Promise.all([0, 1, 2].map(() => spawnCliAsync(["cat", ref, "/big", ...common, "--cache-max", "1M"])));
    for (const r of tight) expect([r.code, r.stderr, sha(r.stdout)]).toEqual([0, "", sha(big)]);
    const roomy = await Promise.all([0, 1].map(() => spawnCliAsync(["cat", ref, "/big", ...common, "--cache-max", "64M"])));
    for (const r of roomy) expect([r.code, sha(r.stdout)]).toEqual([0, sha(big)]);
    await reg.stop();
    try {
      const offline = await spawnCliAsync(["cat", ref, "/big", ...common, "--cache-max", "64M", "--registry-timeout", "2"]);
      expect([offline.code, offline.stderr, sha(offline.stdout)]).toEqual([0, "", sha(big)]);
    } finally {
      await reg.start();
    }
  });
});
