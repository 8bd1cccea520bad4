import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { fixtureDir, sha256hex, tmpDirs } from "../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../helpers/registry-stub.ts";
import { runCli, spawnCliAsync } from "../helpers/run-cli.ts";

const tmp = tmpDirs("pfs-clipush-");
let s: StubRegistry;
beforeAll(async () => {
  s = await startStubRegistry();
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});

describe("cli push, then info/ls/cat over oci://", () => {
  it("pushes a layout and prints the pushed digest; reading it back equals reading the layout", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const cache = ["--insecure-registry", "--cache-dir", join(tmp.make(), "cache")];
    const p = await runCli(["push", `${dir}:mixed`, `oci://${s.host}/team/mixed`, "--insecure-registry"]);
    expect(p.code).toBe(0);
    const digest = /^manifest: +(sha256:[0-9a-f]{64}) \(1160 bytes\); local sha256:e5811d7b\w+ \(mediaType added for the registry\)$/m.exec(p.stdout.toString())![1]!;
    expect(digest).toBe(`sha256:${sha256hex(s.manifest("team/mixed", "mixed")!)}`);
    expect(p.stdout.toString()).toMatch(new RegExp(`^pushed: +oci://${s.host}/team/mixed:mixed@${digest}$`, "m"));
    expect(p.stdout.toString()).toMatch(/^blobs: +6 \(6 uploaded, \d+ bytes; 0 already present\)$/m);

    for (const ref of [`oci://${s.host}/team/mixed:mixed`, `oci://${s.host}/team/mixed@${digest}`]) {
      const local = await runCli(["ls", `${dir}:mixed`, "/", "-lR"]);
      const remote = await runCli(["ls", ref, "/", "-lR", ...cache]);
      expect(remote.code).toBe(0);
      expect(remote.stdout.toString()).toBe(local.stdout.toString());
    }
    const big = await spawnCliAsync(["cat", `oci://${s.host}/team/mixed:mixed`, "/dir/big.bin", ...cache]);
    const bigLocal = await spawnCliAsync(["cat", `${dir}:mixed`, "/dir/big.bin"]);
    expect([big.code, big.stdout.length, big.stderr]).toEqual([0, 300000, ""]);
    expect(big.stdout.equals(bigLocal.stdout)).toBe(true);

    const info = await runCli(["info", `oci://${s.host}/team/mixed`, "--json", ...cache]);
    const j = JSON.parse(info.stdout.toString());
    expect(j.repository).toBe(`oci://${s.host}/team/mixed`);
    expect(j.tags).toEqual(["mixed"]);
    expect(j.images[0].manifest.digest).toBe(digest);
    const localInfo = JSON.parse((await runCli(["info", `${dir}:mixed`, "--json"])).stdout.toString()).images[0];
    expect({ ...j.images[0], manifest: null, storedBytes: null }).toEqual({ ...localInfo, manifest: null, storedBytes: null });

    const again = await runCli(["push", `${dir}:mixed`, `oci://${s.host}/team/mixed:v2`, "--insecure-registry", "--json"]);
    const r = JSON.parse(again.stdout.toString());
    expect([r.digest, r.blobs.uploaded, r.blobs.present]).toEqual([digest, 0, 6]);
  });

  it("usage errors: a bad destination, --parallel, plain http off loopback", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const bad = await runCli(["push", `${dir}:mixed`, "docker://x/y"]);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringMatching(/is not a registry image reference: it does not start with oci:\/\//)]);
    expect((await runCli(["push", `${dir}:mixed`, `oci://${s.host}/x`, "--parallel", "0"])).stderr).toMatch(/--parallel: "0" is not an integer from 1 to 64/);
    const far = await runCli(["push", `${dir}:mixed`, "oci://registry.example/x", "--insecure-registry"]);
    expect([far.code, far.stderr]).toEqual([1, expect.stringMatching(/allows plain HTTP to loopback registries only/)]);
    const h = await runCli(["push", "--help"]);
    expect(h.stdout.toString()).toContain("Usage: puzzlefs push [options] <OCI_DIR:TAG> <DEST>");
  });

  it("a missing tag in the registry exits 2 with the registry's word for it", async () => {
    const r = await runCli(["cat", `oci://${s.host}/team/mixed:nope`, "/a.txt", "--insecure-registry", "--cache-max", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^puzzlefs: manifest oci://${s.host}/team/mixed:nope: not found\\n  hint: the registry has no such tag \\(MANIFEST_UNKNOWN`));
  });
});
