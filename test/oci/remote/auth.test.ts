import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode } from "../../../src/common/errors.ts";
import { defaultAuthFiles, findCredentials, loadCredentials, normalizeAuthKey, parseChallenges } from "../../../src/oci/remote/auth.ts";
import { RegistryClient } from "../../../src/oci/remote/client.ts";
import { parseRemoteRef } from "../../../src/oci/remote/ref.ts";
import { tmpDirs } from "../../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubAuth, type StubRegistry } from "../../helpers/registry-stub.ts";

const tmp = tmpDirs("pfs-auth-");
const stubs: StubRegistry[] = [];
const clients: RegistryClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await Promise.all(stubs.map((s) => s.stop()));
  tmp.cleanup();
});
const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("oci/remote/auth: WWW-Authenticate (RFC 7235)", () => {
  it("parses distribution's bearer challenge, quoted commas and several challenges in one header", () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope"')).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push", error: "insufficient_scope" } },
    ]);
    expect(parseChallenges(['Basic realm="x"', 'Bearer realm="r", scope=a'])).toEqual([
      { scheme: "basic", params: { realm: "x" } },
      { scheme: "bearer", params: { realm: "r", scope: "a" } },
    ]);
    expect(parseChallenges('Basic realm="a \\"quoted\\" \\\\ name", charset="UTF-8"')).toEqual([{ scheme: "basic", params: { realm: 'a "quoted" \\ name', charset: "UTF-8" } }]);
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges("Negotiate")).toEqual([{ scheme: "negotiate", params: {} }]);
  });
});

describe("oci/remote/auth: credentials files (the docker/containers `auths` format)", () => {
  it("normalizes keys and picks the longest matching host/namespace key", () => {
    expect(normalizeAuthKey("https://127.0.0.1:5000/v1/")).toBe("127.0.0.1:5000");
    expect(normalizeAuthKey("http://h/v2")).toBe("h");
    expect(normalizeAuthKey("h:1/ns")).toBe("h:1/ns");
    const doc = {
      auths: {
        "https://h:1": { auth: b64("host:pw1") },
        "h:1/team": { username: "team", password: "pw2" },
        "h:1/team/app": { registrytoken: "RT" },
        other: { identitytoken: "IT" },
      },
    };
    expect(findCredentials(doc, "h:1", "x", "f")).toMatchObject({ username: "host", password: "pw1" });
    expect(findCredentials(doc, "h:1", "team/x", "f")).toMatchObject({ username: "team", password: "pw2" });
    expect(findCredentials(doc, "h:1", "team/app", "f")).toMatchObject({ registryToken: "RT" });
    expect(findCredentials(doc, "other", "r", "f")).toMatchObject({ identityToken: "IT" });
    expect(findCredentials(doc, "h:2", "r", "f")).toBeNull();
    expect(findCredentials({}, "h:1", "r", "f")).toBeNull();
    expect(findCredentials({ auths: { "h:1": { auth: b64("pass:with:colons") } } }, "h:1", "r", "f")).toMatchObject({ username: "pass", password: "with:colons" });
  });

  it("reads --registry-auth only, else REGISTRY_AUTH_FILE, containers auth.json, then ~/.docker/config.json", async () => {
    const d = tmp.make();
    const home = join(d, "home");
    mkdirSync(join(home, ".docker"), { recursive: true });
    writeFileSync(join(home, ".docker", "config.json"), JSON.stringify({ auths: { h: { auth: b64("docker:1") }, only: { auth: b64("dockeronly:1") } } }));
    writeFileSync(join(d, "reg.json"), JSON.stringify({ auths: { h: { auth: b64("env:1") } } }));
    writeFileSync(join(d, "explicit.json"), JSON.stringify({ auths: { h: { auth: b64("explicit:1") } } }));
    const env = { REGISTRY_AUTH_FILE: join(d, "reg.json"), XDG_RUNTIME_DIR: join(d, "run") };
    expect(defaultAuthFiles(env, home)).toEqual([join(d, "reg.json"), join(d, "run", "containers", "auth.json"), join(home, ".docker", "config.json")]);
    expect(await loadCredentials("h", "r", { env, home })).toMatchObject({ username: "env", source: join(d, "reg.json") });
    expect(await loadCredentials("only", "r", { env, home })).toMatchObject({ username: "dockeronly" });
    expect(await loadCredentials("h", "r", { file: join(d, "explicit.json"), env, home })).toMatchObject({ username: "explicit" });
    expect(await loadCredentials("only", "r", { file: join(d, "explicit.json"), env, home })).toBeNull();
    expect(await loadCredentials("h", "r", { env: {}, home: join(d, "nohome") })).toBeNull();
    await expect(loadCredentials("h", "r", { file: join(d, "missing.json") })).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    writeFileSync(join(d, "bad.json"), "{");
    await expect(loadCredentials("h", "r", { file: join(d, "bad.json") })).rejects.toMatchObject({ code: ErrorCode.FORMAT });
  });
});

async function stubWith(auth: StubAuth) {
  const s = await startStubRegistry({ auth });
  stubs.push(s);
  s.addBlob("team/app", new TextEncoder().encode("hello"));
  s.addBlob("other", new TextEncoder().encode("other"));
  return s;
}

function client(s: StubRegistry, repo: string, creds: { username: string; password: string } | null) {
  const c = new RegistryClient(parseRemoteRef(`oci://${s.host}/${repo}:t`), { plainHttp: true, credentials: creds && { ...creds, source: "test" }, deadlineMs: 5000 });
  clients.push(c);
  return c;
}

const HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

describe("oci/remote/auth: the challenge flow against a registry", () => {
  it("basic: the first request goes anonymous, the 401 switches to Basic for this and every later request", async () => {
    const s = await stubWith({ kind: "basic", users: { puzzle: "s3cret" } });
    const c = client(s, "team/app", { username: "puzzle", password: "s3cret" });
    expect(Buffer.from(await c.getBlob(HELLO, { maxSize: 100 })).toString()).toBe("hello");
    expect(await c.headBlob(HELLO)).toBe(5);
    expect(s.requests.map((r) => [r.method, r.headers.authorization ?? null])).toEqual([
      ["GET", null],
      ["GET", `Basic ${b64("puzzle:s3cret")}`],
      ["HEAD", `Basic ${b64("puzzle:s3cret")}`],
    ]);
  });

  it("basic: no or wrong credentials end in an access error that says how to fix it", async () => {
    const s = await stubWith({ kind: "basic", users: { puzzle: "s3cret" } });
    await expect(client(s, "team/app", null).getBlob(HELLO, { maxSize: 100 })).rejects.toMatchObject({
      code: ErrorCode.IO,
      message: expect.stringMatching(/refused access \(UNAUTHORIZED/),
      hint: expect.stringMatching(/--registry-auth/),
    });
    await expect(client(s, "team/app", { username: "puzzle", password: "nope" }).getBlob(HELLO, { maxSize: 100 })).rejects.toMatchObject({
      hint: expect.stringMatching(/check the credentials .* in test/),
    });
  });

  it("bearer: one token per scope for many concurrent requests, sent with Basic credentials to the realm", async () => {
    const s = await stubWith({ kind: "bearer", users: { puzzle: "s3cret" } });
    const c = client(s, "team/app", { username: "puzzle", password: "s3cret" });
    const got = await Promise.all(Array.from({ length: 6 }, () => c.getBlob(HELLO, { maxSize: 100 })));
    expect(got.every((g) => Buffer.from(g).toString() === "hello")).toBe(true);
    expect(s.tokensIssued).toBe(1);
    const tokenReq = s.requests.find((r) => r.path.startsWith("/token"))!;
    const q = new URL(tokenReq.path, "http://x").searchParams;
    expect([q.get("service"), q.getAll("scope")]).toEqual(["stub-registry", ["repository:team/app:pull"]]);
    expect(tokenReq.headers.authorization).toBe(`Basic ${b64("puzzle:s3cret")}`);
    // The token is for team/app only: the registry refuses it for another repository.
    const other = client(s, "other", { username: "puzzle", password: "s3cret" });
    expect(await other.headBlob("d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa")).toBe(5);
    expect(s.tokensIssued).toBe(2);
  });

  it("bearer: an expired token is fetched again before use", async () => {
    const s = await stubWith({ kind: "bearer", users: { puzzle: "s3cret" }, ttlSeconds: 1 });
    const c = client(s, "team/app", { username: "puzzle", password: "s3cret" });
    await c.getBlob(HELLO, { maxSize: 100 });
    expect(s.tokensIssued).toBe(1);
    await new Promise((r) => setTimeout(r, 1100));
    await c.getBlob(HELLO, { maxSize: 100 });
    expect(s.tokensIssued).toBe(2);
    // No request after the first challenge went out with a stale token.
    expect(s.requests.filter((r) => !r.path.startsWith("/token")).map((r) => r.headers.authorization === undefined)).toEqual([true, false, false]);
  });

  it("bearer: a token the registry stops accepting (revoked) is replaced on the 401", async () => {
    const s = await stubWith({ kind: "bearer", users: { puzzle: "s3cret" } });
    const c = client(s, "team/app", { username: "puzzle", password: "s3cret" });
    await c.getBlob(HELLO, { maxSize: 100 });
    let revoked = false;
    s.hook = (r) => {
      if (!revoked && r.path.includes("/blobs/")) {
        revoked = true;
        return { status: 401, headers: { "www-authenticate": `Bearer realm="${s.origin}/token",service="stub-registry",scope="repository:team/app:pull"` } };
      }
      return "pass";
    };
    expect(Buffer.from(await c.getBlob(HELLO, { maxSize: 100 })).toString()).toBe("hello");
    expect(s.tokensIssued).toBe(2);
    s.hook = null;
  });

  it("bearer: anonymous tokens carry no access; the refusal names the missing credentials", async () => {
    const s = await stubWith({ kind: "bearer", users: { puzzle: "s3cret" } });
    await expect(client(s, "team/app", null).getBlob(HELLO, { maxSize: 100 })).rejects.toMatchObject({ code: ErrorCode.IO, hint: expect.stringMatching(/--registry-auth/) });
    await expect(client(s, "team/app", { username: "puzzle", password: "bad" }).getBlob(HELLO, { maxSize: 100 })).rejects.toMatchObject({
      message: expect.stringMatching(/token service answered 401/),
    });
  });
});
