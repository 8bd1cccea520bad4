/**
 * `puzzlefs serve oci://…` against the real registry (docker-registry 2.8 on
 * 127.0.0.1): the disk it serves is byte-identical (nbdcopy) to serving the
 * same manifest from a local layout (fixtures, a synthetic tree, Debian
 * minbase); a QEMU guest mounts Debian minbase through the kernel nbd client,
 * and mounting plus reading /etc/os-release makes the registry serve a small
 * fraction of the image (bytes counted by a proxy in front of the registry); with the registry stopped, cached blocks still read
 * and uncached ones fail with EIO within the deadline, and service resumes
 * when it is back; two servers share one cache directory.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { spawnCliAsync } from "../test/helpers/run-cli.ts";
import { OciLayout } from "../src/oci/layout.ts";
import { MediaType, withTaggedManifest } from "../src/oci/manifest.ts";
import { ensureDebianRootfs } from "./lib/corpus.ts";
import { bootGuest, consoleSummary } from "./lib/qemu.ts";
import { startProxy, startRegistry, startServe, type CountingProxy, type RegistryServer, type ServeProcess } from "./lib/registry.ts";
import { makeSyntheticRootfs, type SyntheticImage } from "./lib/synthetic-image.ts";

const exec = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), "pfs-registry-serve-"));
const FIX = join(import.meta.dirname, "..", "test", "fixtures", "oci");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
let reg: RegistryServer;
let proxy: CountingProxy;
let syn: SyntheticImage;
let synPushed: string;
const servers: ServeProcess[] = [];

async function serve(args: string[]): Promise<ServeProcess> {
  const s = await startServe(args);
  servers.push(s);
  return s;
}

/** The whole export, as nbdcopy (libnbd) reads it. */
async function nbdcopy(port: number, name: string, out: string): Promise<Buffer> {
  await exec("nbdcopy", [`nbd://127.0.0.1:${port}/${encodeURIComponent(name)}`, out], { maxBuffer: 1 << 24 });
  return readFileSync(out);
}

beforeAll(async () => {
  reg = await startRegistry({ dir: join(work, "reg") });
  proxy = await startProxy(reg.host);
  syn = await makeSyntheticRootfs(join(work, "syn"), "rootfs");
  for (const [name, tag] of [["mixed-noop", "mixed"], ["sekien-zstd", "test"]] as const) {
    const d = join(work, "layouts", name);
    cpSync(join(FIX, name), d, { recursive: true });
    await exec("skopeo", ["copy", "--dest-tls-verify=false", `oci:${d}:${tag}`, `docker://${reg.host}/skopeo/${name}:${tag}`]);
  }
  await exec("skopeo", ["copy", "--dest-tls-verify=false", `oci:${syn.dir}:rootfs`, `docker://${reg.host}/skopeo/syn:rootfs`]);
  const p = await spawnCliAsync(["push", `${syn.dir}:rootfs`, `oci://${reg.host}/ours/syn`, "--insecure-registry", "--json"]);
  expect(p.code).toBe(0);
  synPushed = JSON.parse(p.stdout.toString()).digest;
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  await proxy?.stop();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("serve oci://", () => {
  it.each([
    ["mixed-noop", "mixed"],
    ["sekien-zstd", "test"],
    ["syn", "rootfs"],
  ])("%s: nbdcopy of serve oci://…:%s is byte-identical to serving the local layout", async (name, tag) => {
    const dir = name === "syn" ? syn.dir : join(work, "layouts", name);
    const local = await serve([dir, "--tag", tag]);
    const remote = await serve([`oci://${reg.host}/skopeo/${name}:${tag}`, "--insecure-registry", "--cache-dir", join(work, `cache-${name}`)]);
    const a = await nbdcopy(local.port, tag, join(work, `${name}-local.img`));
    const b = await nbdcopy(remote.port, tag, join(work, `${name}-remote.img`));
    expect(b.length).toBe(a.length);
    expect(sha(b)).toBe(sha(a));
    // And `export oci://…` writes the same bytes.
    const out = join(work, `${name}-export.img`);
    const e = await spawnCliAsync(["export", `oci://${reg.host}/skopeo/${name}:${tag}`, out, "--insecure-registry", "--cache-dir", join(work, `cache-${name}`)]);
    expect(e.code).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(a));
    await local.stop();
    await remote.stop();
  });

  it("an image pushed by puzzlefs (mediaType added: a new manifest digest) serves the same disk as the local layout it was pushed from", async () => {
    const local = await serve([syn.dir, "--tag", "rootfs"]);
    // TAG@DIGEST: pinned by the digest, named (export and ext label) by the tag, like the local one.
    const remote = await serve([`oci://${reg.host}/ours/syn:rootfs@${synPushed}`, "--insecure-registry", "--cache-max", "0"]);
    expect(remote.output()).toContain(`export "rootfs"`);
    expect(remote.output()).toContain(`ext4 image of oci://${reg.host}/ours/syn:rootfs@${synPushed}`);
    const a = await nbdcopy(local.port, "rootfs", join(work, "local-syn.img"));
    const b = await nbdcopy(remote.port, "rootfs", join(work, "pushed.img"));
    expect(sha(b)).toBe(sha(a));
    await local.stop();
    await remote.stop();
  });

  it("registry stopped mid-serve: a warm server keeps serving, a cold one answers EIO within the deadline and keeps going; both serve again when it returns; two servers share one cache", async () => {
    const warmCache = join(work, "cache-warm");
    const ref = `oci://${reg.host}/skopeo/syn:rootfs`;
    const common = ["--insecure-registry", "--registry-timeout", "3"];
    // Two servers on one cache directory, read concurrently.
    const warm = await serve([ref, ...common, "--cache-dir", warmCache]);
    const twin = await serve([ref, ...common, "--cache-dir", warmCache]);
    const [x, y] = await Promise.all([nbdcopy(warm.port, "rootfs", join(work, "warm.img")), nbdcopy(twin.port, "rootfs", join(work, "twin.img"))]);
    const want = sha(x);
    expect(sha(y)).toBe(want);
    const cold = await serve([ref, ...common, "--cache-dir", join(work, "cache-cold")]);
    await reg.stop();
    try {
      // Cached: the whole disk still reads, from a fresh server process too (by digest, manifest from the cache).
      expect(sha(await nbdcopy(warm.port, "rootfs", join(work, "warm2.img")))).toBe(want);
      const digest = /@sha256:([0-9a-f]{64})/.exec(warm.output())![1]!;
      const offline = await serve([`oci://${reg.host}/skopeo/syn:rootfs@sha256:${digest}`, ...common, "--cache-dir", warmCache]);
      expect(sha(await nbdcopy(offline.port, "rootfs", join(work, "offline.img")))).toBe(want);
      await offline.stop();
      // Uncached: EIO, within the deadline (plus nbdcopy's own work), and the server stays up.
      const t0 = Date.now();
      const fail = await exec("nbdcopy", [`nbd://127.0.0.1:${cold.port}/rootfs`, join(work, "cold.img")]).then(
        () => null,
        (e: { stderr?: string }) => e,
      );
      const secs = (Date.now() - t0) / 1000;
      expect(fail).not.toBeNull();
      expect(fail!.stderr).toMatch(/Input\/output error/);
      expect(secs).toBeLessThan(30);
      expect(cold.output()).toMatch(/-> EIO: ext image @0x[0-9a-f]+ \(file inode \d+\): chunk blob sha256:[0-9a-f]{64} from oci:\/\/127\.0\.0\.1:\d+\/skopeo\/syn: 127\.0\.0\.1:\d+ did not answer within 3\.0 s/);
      const info = await exec("nbdinfo", ["--size", `nbd://127.0.0.1:${cold.port}/rootfs`]);
      expect(Number(info.stdout.trim())).toBe(x.length);
    } finally {
      await reg.start();
    }
    expect(sha(await nbdcopy(cold.port, "rootfs", join(work, "cold2.img")))).toBe(want);
    for (const s of [warm, twin, cold]) await s.stop();
  });

  it("--prefetch fills the cache with the chunks under /etc and /usr/lib in the background", async () => {
    const cache = join(work, "cache-prefetch");
    proxy.reset();
    const s = await serve([`oci://${proxy.host}/skopeo/syn:rootfs`, "--insecure-registry", "--cache-dir", cache, "--prefetch"]);
    const chunksOf = (prefix: string) =>
      [...syn.files].filter(([p, b]) => p.startsWith(prefix) && b.length > 0).flatMap(([, b]) => Array.from({ length: Math.ceil(b.length / 65536) }, (_, i) => sha(b.subarray(i * 65536, (i + 1) * 65536))));
    const want = new Set([...chunksOf("/etc/"), ...chunksOf("/usr/lib/")]);
    const fetched = () => new Set(proxy.requests.filter((q) => q.path.includes("/blobs/")).map((q) => q.path.slice(-64)));
    const deadline = Date.now() + 120_000;
    while ([...want].some((h) => !fetched().has(h)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 500));
    await s.stop();
    const got = fetched();
    expect([...want].filter((h) => !got.has(h))).toEqual([]);
    // Nothing else: /usr/bin stays in the registry until read.
    expect(chunksOf("/usr/bin/").filter((h) => got.has(h))).toEqual([]);
    for (const h of want) expect(existsSync(join(cache, "blobs", "sha256", h))).toBe(true);
  });
});

describe("serve oci:// of Debian minbase (puzzlefs build of the integration corpus, puzzlefs push)", () => {
  let layoutDir: string;
  let tree: string;
  let pushed: string;
  beforeAll(async () => {
    tree = await ensureDebianRootfs();
    layoutDir = join(work, "debian");
    const b = await spawnCliAsync(["build", tree, `${layoutDir}:minbase`]);
    expect(b.code, b.stderr).toBe(0);
    const p = await spawnCliAsync(["push", `${layoutDir}:minbase`, `oci://${reg.host}/debian/minbase`, "--insecure-registry", "--json"]);
    expect(p.code, p.stderr).toBe(0);
    pushed = JSON.parse(p.stdout.toString()).digest;
  });

  it("nbdcopy of serve oci://…:minbase equals serving a local layout holding the manifest the registry has (skopeo inspect --raw)", async () => {
    const raw = (await exec("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/debian/minbase:minbase`], { encoding: "buffer", maxBuffer: 1 << 24 })).stdout as Buffer;
    expect(`sha256:${sha(raw)}`).toBe(pushed);
    // The built layout plus the registry's manifest bytes under tag "minbase".
    const copy = join(work, "debian-registry-manifest");
    cpSync(layoutDir, copy, { recursive: true });
    const layout = await OciLayout.open(copy);
    const { hex } = await layout.blobs.put(new Uint8Array(raw));
    const index = await layout.readIndex();
    await layout.writeIndex(withTaggedManifest(index, "minbase", { mediaType: MediaType.MANIFEST, digest: `sha256:${hex}`, size: raw.length }));
    const local = await serve([copy, "--tag", "minbase"]);
    const remote = await serve([`oci://${reg.host}/debian/minbase:minbase`, "--insecure-registry", "--cache-dir", join(work, "cache-debian")]);
    const a = await nbdcopy(local.port, "minbase", join(work, "debian-local.img"));
    const b = await nbdcopy(remote.port, "minbase", join(work, "debian-remote.img"));
    expect(b.length).toBe(a.length);
    expect(sha(b)).toBe(sha(a));
    rmSync(join(work, "debian-local.img"));
    rmSync(join(work, "debian-remote.img"));
    await local.stop();
    await remote.stop();
  });

  it("a QEMU guest mounts it with the kernel nbd client; mount + reading /etc/os-release costs the registry < 5 % of the image's bytes", async () => {
    const ctx = inject("integration");
    proxy.reset();
    const s = await serve([`oci://${proxy.host}/debian/minbase:minbase`, "--insecure-registry", "--cache-dir", join(work, "cache-guest")]);
    const startup = proxy.bytes;
    const r = await bootGuest({
      assets: ctx.assets,
      params: { mode: "nbd", exports: "minbase", bs: 4096, scenario: "cat", paths: "/etc/os-release" },
      guestfwdPort: s.port,
      log: join(work, "guest.log"),
      timeoutMs: 300_000,
    });
    expect(r.result, consoleSummary(r.lines)).toBe("ok");
    const want = readFileSync(join(tree, "etc", "os-release"));
    expect(r.lines).toContain(`CAT ${sha(want)} /etc/os-release`);
    expect(r.lines.filter((l) => l.startsWith("C ")).map((l) => l.slice(2))).toEqual(want.toString().trimEnd().split("\n"));
    const stored = Number(JSON.parse((await spawnCliAsync(["info", `${layoutDir}:minbase`, "--json"])).stdout.toString()).images[0].storedBytes);
    const frac = proxy.bytes / stored;
    console.log(
      `registry laziness, Debian minbase (guest mount + cat /etc/os-release): ${proxy.bytes} of ${stored} image bytes (${(100 * frac).toFixed(2)} %); ${startup} at serve start (manifest + rootfs); guest ${r.seconds.toFixed(1)} s`,
    );
    expect(frac).toBeLessThan(0.05);
    await s.stop();
  });
});
