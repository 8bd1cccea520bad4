import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode } from "../../src/common/errors.ts";
import { parseRemoteRef } from "../../src/oci/remote/ref.ts";
import { openCacheArg, parseSize, registryClientOptions } from "../../src/cli/remote-args.ts";
import { fixtureDir, tmpDirs } from "../helpers/oci-fixtures.ts";
import { makePki, type TestPki } from "../helpers/registry-pki.ts";
import { startStubRegistry, type StubRegistry } from "../helpers/registry-stub.ts";
import { runCli } from "../helpers/run-cli.ts";

const tmp = tmpDirs("pfs-regargs-");
let pki: TestPki;
let s: StubRegistry;
beforeAll(async () => {
  pki = await makePki(tmp.make());
  s = await startStubRegistry({ tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, auth: { kind: "basic", users: { puzzle: "s3cret" } } });
  s.addLayout("mixed", fixtureDir("mixed-noop"));
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});

describe("cli/remote-args", () => {
  it("parses sizes with binary suffixes", () => {
    expect(parseSize("2G", "x")).toBe(2 * 1024 ** 3);
    expect(parseSize("512M", "x")).toBe(512 * 1024 ** 2);
    expect(parseSize("64k", "x")).toBe(65536);
    expect(parseSize("1.5G", "x")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("4096", "x")).toBe(4096);
    expect(parseSize("1GiB", "x")).toBe(1024 ** 3);
    expect(() => parseSize("lots", "--cache-max")).toThrow(/--cache-max: "lots" is not a size/);
  });

  it("plain HTTP: loopback with --insecure-registry, elsewhere only for the host it names", async () => {
    const loop = parseRemoteRef("oci://127.0.0.1:5000/r:t");
    const far = parseRemoteRef("oci://registry.example:5000/r:t");
    expect((await registryClientOptions(loop, { insecureRegistry: true })).plainHttp).toBe(true);
    expect((await registryClientOptions(loop, {})).plainHttp).toBe(false);
    await expect(registryClientOptions(far, { insecureRegistry: true })).rejects.toMatchObject({
      code: ErrorCode.USAGE,
      hint: "if registry.example:5000 really has no TLS, name it: --insecure-registry registry.example:5000",
    });
    const named = await registryClientOptions(far, { insecureRegistry: "registry.example:5000" });
    expect(named.plainHttp).toBe(true);
    expect(named.allowHttp!(new URL("http://registry.example:5000/x"))).toBe(true);
    expect(named.allowHttp!(new URL("http://cdn.example/x"))).toBe(false);
    expect(named.allowHttp!(new URL("http://127.0.0.1:9/token"))).toBe(true);
    expect((await registryClientOptions(far, { insecureRegistry: "other:1" })).plainHttp).toBe(false);
    await expect(registryClientOptions(loop, { registryTimeout: "0" })).rejects.toMatchObject({ code: ErrorCode.USAGE });
    expect((await registryClientOptions(loop, { registryTimeout: "2.5" })).deadlineMs).toBe(2500);
    const notPem = join(tmp.make(), "x.pem");
    writeFileSync(notPem, "hello");
    await expect(registryClientOptions(loop, { registryCa: notPem })).rejects.toMatchObject({ message: expect.stringMatching(/holds no PEM certificate/) });
  });

  it("--cache-max 0 means no disk cache", async () => {
    expect(await openCacheArg({ cacheMax: "0" })).toBeNull();
    const c = await openCacheArg({ cacheDir: tmp.make(), cacheMax: "1M" });
    expect(c!.maxBytes).toBe(1 << 20);
  });

  it("TLS with --registry-ca and basic auth from --registry-auth, end to end through `cat`", async () => {
    const d = tmp.make();
    const auth = join(d, "auth.json");
    writeFileSync(auth, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from("puzzle:s3cret").toString("base64") } } }));
    const img = `oci://${s.host}/mixed:mixed`;
    const common = ["--cache-dir", join(d, "cache")];
    const ok = await runCli(["cat", img, "/a.txt", "--registry-ca", pki.caCert, "--registry-auth", auth, ...common]);
    expect([ok.code, ok.stdout.toString(), ok.stderr]).toEqual([0, "hello\n", ""]);
    const noCa = await runCli(["cat", img, "/a.txt", "--registry-auth", auth, "--registry-timeout", "2", ...common]);
    expect(noCa.code).toBe(3);
    expect(noCa.stderr).toMatch(/TLS certificate of 127\.0\.0\.1:\d+ not trusted[\s\S]*hint: give the registry's CA certificate with --registry-ca FILE/);
    const noAuth = await runCli(["cat", img, "/a.txt", "--registry-ca", pki.caCert, "--registry-auth", join(d, "none.json"), ...common]);
    expect([noAuth.code, noAuth.stderr]).toEqual([2, expect.stringMatching(/registry credentials file .*none\.json: not found/)]);
    const plain = await runCli(["ls", img, "--insecure-registry", "--registry-timeout", "2", ...common]);
    expect(plain.code).toBe(3); // plain HTTP spoken to a TLS server
    expect(plain.stderr).toMatch(/manifest oci:\/\/127\.0\.0\.1:\d+\/mixed:mixed/);
  });
});
