import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode } from "../../src/common/errors.ts";
import { planFor } from "../../src/cli/export.ts";
import { RemoteExtDevice, openRemoteExports } from "../../src/cli/remote-serve.ts";
import { parsePrefetch } from "../../src/cli/serve.ts";
import { openImage } from "../../src/puzzlefs/reader/image.ts";
import { fixtureDir, sha256hex, tmpDirs } from "../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../helpers/registry-stub.ts";
import { runCli } from "../helpers/run-cli.ts";

const tmp = tmpDirs("pfs-rserve-");
let s: StubRegistry;
const MIXED = "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052";
beforeAll(async () => {
  s = await startStubRegistry();
  s.addLayout("mixed", fixtureDir("mixed-noop"));
  s.addLayout("delta", fixtureDir("sekien-delta-noop"));
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});

const reg = () => ({ insecureRegistry: true as const, cacheDir: tmp.make() });

async function closeAll(m: Map<string, { device: { close?(): Promise<void> } }>) {
  for (const e of m.values()) await e.device.close?.();
}

describe("cli/remote-serve: registry images as ext exports", () => {
  it("serves the same device bytes as the local layout; names the export by tag, or by digest when pinned without one", async () => {
    const byTag = await openRemoteExports(`oci://${s.host}/mixed:mixed`, [], { cacheSize: 1 << 20, registry: reg() });
    const byDigest = await openRemoteExports(`oci://${s.host}/mixed@sha256:${MIXED}`, [], { cacheSize: 1 << 20, registry: reg() });
    try {
      expect([...byTag.keys()]).toEqual(["mixed"]);
      expect([...byDigest.keys()]).toEqual([`sha256:${MIXED}`]);
      expect(byTag.get("mixed")!.description).toMatch(new RegExp(`^ext4 image of oci://${s.host}/mixed:mixed@sha256:${MIXED} \\(\\d+ inodes, uuid [0-9a-f-]{36}\\)$`));
      const local = planFor(await openImage(fixtureDir("mixed-noop"), "mixed"));
      const dev = byTag.get("mixed")!.device;
      expect(dev.size).toBe(local.size);
      expect(sha256hex(await dev.read(0, dev.size))).toBe(sha256hex(await local.read(0, local.size)));
    } finally {
      await closeAll(byTag);
      await closeAll(byDigest);
    }
  });

  it("a repository with --tag serves those tags; without, every tag; a ref with a tag refuses --tag", async () => {
    const some = await openRemoteExports(`oci://${s.host}/delta`, ["test2"], { cacheSize: 1 << 20, registry: reg() });
    const all = await openRemoteExports(`oci://${s.host}/delta`, [], { cacheSize: 1 << 20, registry: reg() });
    try {
      expect([...some.keys()]).toEqual(["test2"]);
      expect([...all.keys()].sort()).toEqual(["test", "test2"]);
    } finally {
      await closeAll(some);
      await closeAll(all);
    }
    await expect(openRemoteExports(`oci://${s.host}/delta:test`, ["test2"], { cacheSize: 1 << 20, registry: reg() })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(openRemoteExports(`oci://${s.host}/delta`, ["nope"], { cacheSize: 1 << 20, registry: reg() })).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });

  it("--prefetch runs in the background after open; close() stops it and releases the registry connection", async () => {
    s.requests.length = 0;
    const m = await openRemoteExports(`oci://${s.host}/mixed:mixed`, [], { cacheSize: 1 << 20, registry: reg(), prefetch: ["/dir"] });
    const dev = m.get("mixed")!.device as RemoteExtDevice;
    expect(dev).toBeInstanceOf(RemoteExtDevice);
    await dev.prefetching;
    const bigChunks = (await openImage(fixtureDir("mixed-noop"), "mixed")).tree.fileBlobs(7).map((b) => b.hex);
    const fetched = s.requests.filter((r) => r.path.includes("/blobs/")).map((r) => r.path.slice(-64));
    for (const h of bigChunks) expect(fetched).toContain(h);
    await dev.close();
    expect(dev.signal.aborted).toBe(true);
  });

  it("parses --prefetch", () => {
    expect(parsePrefetch(undefined)).toBeNull();
    expect(parsePrefetch(true)).toEqual(["/etc", "/usr/lib"]);
    expect(parsePrefetch("/a, /b/c")).toEqual(["/a", "/b/c"]);
    expect(() => parsePrefetch("etc")).toThrow(/not an absolute path/);
  });

  it("export and extract take oci:// too, and give what they give for the local layout", async () => {
    const d = tmp.make();
    const common = ["--insecure-registry", "--cache-dir", join(d, "cache")];
    expect((await runCli(["export", `oci://${s.host}/mixed:mixed`, join(d, "r.img"), ...common])).code).toBe(0);
    expect((await runCli(["export", `${fixtureDir("mixed-noop")}:mixed`, join(d, "l.img")])).code).toBe(0);
    expect(sha256hex(readFileSync(join(d, "r.img")))).toBe(sha256hex(readFileSync(join(d, "l.img"))));
    expect((await runCli(["extract", `oci://${s.host}/mixed:mixed`, join(d, "rx"), ...common])).code).toBe(0);
    expect((await runCli(["extract", `${fixtureDir("mixed-noop")}:mixed`, join(d, "lx")])).code).toBe(0);
    // diff(1) judges the two trees; it always mentions two special files of the same type, nothing else may differ.
    const r = spawnSync("diff", ["-r", "--no-dereference", join(d, "rx"), join(d, "lx")], { encoding: "utf8" });
    const lines = r.stdout.split("\n").filter((l) => l !== "" && !/^File \S+ is a (fifo|character special file) while file \S+ is a \1$/.test(l));
    expect(lines).toEqual([]);
    expect(r.stdout).toContain("is a fifo while");
  });
});
