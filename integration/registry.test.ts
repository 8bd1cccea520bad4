/**
 * `oci://` against the real registry: Debian's docker-registry (distribution
 * 2.8) on 127.0.0.1 with temporary configs — plain HTTP, then TLS + basic
 * auth with a test CA, then bearer tokens from a token service in the test.
 * Images go in with both `puzzlefs push` and `skopeo copy`; `info`, `ls` and
 * `cat` over oci:// must equal the same commands on the local layout, and
 * skopeo must read back what `puzzlefs push` wrote (it is the oracle for our
 * pusher, as the registry is for our puller).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { spawnCliAsync, type CliResult } from "../test/helpers/run-cli.ts";
import { makeHtpasswd, makePki, startRegistry, startTokenServer, type RegistryServer, type TestPki, type TokenServer } from "./lib/registry.ts";

const exec = promisify(execFile);
const FIX = join(import.meta.dirname, "..", "test", "fixtures", "oci");
const work = mkdtempSync(join(tmpdir(), "pfs-registry-it-"));
const IMAGES: Array<[string, string]> = [
  ["mixed-noop", "mixed"],
  ["sekien-zstd", "test"],
  ["sekien-delta-noop", "test2"],
];
let pki: TestPki;
const started: Array<{ stop(): Promise<void> }> = [];

/** A private, writable copy of a fixture layout (they are read-only). */
function layout(fixture: string, copy: string): string {
  const d = join(work, "layouts", copy);
  cpSync(join(FIX, fixture), d, { recursive: true });
  return d;
}

async function cli(args: string[]): Promise<CliResult> {
  const r = await spawnCliAsync(args);
  if (r.code !== 0) throw new Error(`puzzlefs ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r;
}

/** `info --json` minus what legitimately differs between a layout and a registry (location, manifest digest when mediaType was added). */
function infoCore(j: { images: Array<Record<string, unknown>> }) {
  return j.images.map((i) => ({ ...i, manifest: null, storedBytes: null }));
}

/** ls -lR and the sha256 of every regular file, via the CLI. */
async function snapshot(ref: string, extra: string[]): Promise<{ ls: string; files: Record<string, string> }> {
  const ls = (await cli(["ls", ref, "/", "-lR", ...extra])).stdout.toString();
  const files: Record<string, string> = {};
  let dir = "/";
  for (const line of ls.split("\n")) {
    const h = /^(\/.*):$/.exec(line);
    if (h) dir = h[1]!;
    const m = /^-\S+\s+\d+\s+\d+\s+\d+\s+\d+ (.+)$/.exec(line);
    if (m) {
      const p = `${dir === "/" ? "" : dir}/${m[1]}`;
      const out = (await cli(["cat", ref, p, ...extra])).stdout;
      files[p] = (await import("node:crypto")).createHash("sha256").update(out).digest("hex");
    }
  }
  return { ls, files };
}

beforeAll(async () => {
  pki = await makePki(join(work, "pki"));
});
afterAll(async () => {
  for (const s of started.reverse()) await s.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("registry: plain HTTP on loopback", () => {
  let reg: RegistryServer;
  const opts = () => ["--insecure-registry", "--cache-dir", join(work, "cache-plain")];
  beforeAll(async () => {
    reg = await startRegistry({ dir: join(work, "reg-plain") });
    started.push(reg);
  });

  it.each(IMAGES)("%s: skopeo copy in, then info/ls/cat over oci:// equal the local layout", async (name, tag) => {
    const dir = layout(name, `${name}-skopeo`);
    await exec("skopeo", ["copy", "--dest-tls-verify=false", `oci:${dir}:${tag}`, `docker://${reg.host}/skopeo/${name}:${tag}`]);
    const ref = `oci://${reg.host}/skopeo/${name}:${tag}`;
    const local = JSON.parse((await cli(["info", `${dir}:${tag}`, "--json"])).stdout.toString());
    const remote = JSON.parse((await cli(["info", ref, "--json", ...opts()])).stdout.toString());
    // skopeo keeps the manifest bytes: even the digest is the local one (notes §1).
    expect(remote.images[0].manifest).toEqual(local.images[0].manifest);
    expect(infoCore(remote)).toEqual(infoCore(local));
    expect(await snapshot(ref, opts())).toEqual(await snapshot(`${dir}:${tag}`, []));
  });

  it.each(IMAGES)("%s: puzzlefs push, read back by us and by skopeo; a second push uploads nothing", async (name, tag) => {
    const dir = layout(name, `${name}-ours`);
    const p = JSON.parse((await cli(["push", `${dir}:${tag}`, `oci://${reg.host}/ours/${name}`, "--insecure-registry", "--json"])).stdout.toString());
    expect(p.blobs.uploaded).toBe(p.blobs.total);
    const ref = `oci://${reg.host}/ours/${name}@${p.digest}`;
    expect(await snapshot(ref, opts())).toEqual(await snapshot(`${dir}:${tag}`, []));
    const local = JSON.parse((await cli(["info", `${dir}:${tag}`, "--json"])).stdout.toString());
    expect(infoCore(JSON.parse((await cli(["info", `oci://${reg.host}/ours/${name}:${tag}`, "--json", ...opts()])).stdout.toString()))).toEqual(infoCore(local));
    // The registry's own view of what we pushed: same digest, same bytes as skopeo sees them.
    const raw = (await exec("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/ours/${name}:${tag}`], { encoding: "buffer" })).stdout as Buffer;
    expect(`sha256:${(await import("node:crypto")).createHash("sha256").update(raw).digest("hex")}`).toBe(p.digest);
    expect(JSON.parse(raw.toString()).mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    const pulled = join(work, "pulled", name);
    mkdirSync(pulled, { recursive: true });
    await exec("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/ours/${name}:${tag}`, `oci:${pulled}:${tag}`]);
    expect(await snapshot(`${pulled}:${tag}`, [])).toEqual(await snapshot(`${dir}:${tag}`, []));
    const again = JSON.parse((await cli(["push", `${dir}:${tag}`, `oci://${reg.host}/ours/${name}`, "--insecure-registry", "--json"])).stdout.toString());
    expect([again.digest, again.blobs.uploaded, again.blobs.present]).toEqual([p.digest, 0, p.blobs.total]);
  });

  it("info on a repository lists its tags and describes each tagged image", async () => {
    const j = JSON.parse((await cli(["info", `oci://${reg.host}/ours/sekien-delta-noop`, "--json", ...opts()])).stdout.toString());
    expect(j.tags.sort()).toEqual(["test2"]);
    expect(j.images.map((i: { tag: string; inodes: number }) => [i.tag, i.inodes])).toEqual([["test2", 3]]);
  });
});

describe("registry: TLS with a test CA and basic auth", () => {
  let reg: RegistryServer;
  const auth = () => join(work, "auth-basic.json");
  beforeAll(async () => {
    const htpasswd = join(work, "htpasswd");
    await makeHtpasswd(htpasswd, "puzzle", "s3cret");
    reg = await startRegistry({ dir: join(work, "reg-tls"), tls: { cert: pki.serverCert, key: pki.serverKey }, htpasswd }, pki.caCert);
    started.push(reg);
    writeFileSync(auth(), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("puzzle:s3cret").toString("base64") } } }));
  });

  it("push and pull with --registry-ca and --registry-auth; skopeo pushes through the same CA and credentials", async () => {
    const dir = layout("mixed-noop", "mixed-tls");
    const common = ["--registry-ca", pki.caCert, "--registry-auth", auth()];
    const p = JSON.parse((await cli(["push", `${dir}:mixed`, `oci://${reg.host}/secure/mixed`, "--json", ...common])).stdout.toString());
    const certDir = join(work, "skopeo-certs");
    mkdirSync(certDir, { recursive: true });
    cpSync(pki.caCert, join(certDir, "ca.crt"));
    await exec("skopeo", ["copy", "--dest-cert-dir", certDir, "--dest-creds", "puzzle:s3cret", `oci:${dir}:mixed`, `docker://${reg.host}/secure/skopeo:mixed`]);
    const extra = [...common, "--cache-dir", join(work, "cache-tls")];
    const want = await snapshot(`${dir}:mixed`, []);
    expect(await snapshot(`oci://${reg.host}/secure/mixed@${p.digest}`, extra)).toEqual(want);
    expect(await snapshot(`oci://${reg.host}/secure/skopeo:mixed`, extra)).toEqual(want);
  });

  it("refuses clearly without the CA, without credentials, and with wrong ones", async () => {
    const ref = `oci://${reg.host}/secure/mixed:mixed`;
    const cache = ["--cache-max", "0"];
    const noCa = await spawnCliAsync(["ls", ref, "--registry-auth", auth(), ...cache]);
    expect([noCa.code, noCa.stderr]).toEqual([3, expect.stringMatching(/TLS certificate of 127\.0\.0\.1:\d+ not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)\n  hint: give the registry's CA certificate with --registry-ca FILE/)]);
    const none = join(work, "empty-auth.json");
    writeFileSync(none, JSON.stringify({ auths: {} }));
    const anon = await spawnCliAsync(["ls", ref, "--registry-ca", pki.caCert, "--registry-auth", none, ...cache]);
    expect([anon.code, anon.stderr]).toEqual([3, expect.stringMatching(/refused access \(UNAUTHORIZED[\s\S]*hint: the registry wants credentials: pass --registry-auth FILE/)]);
    const wrong = join(work, "wrong-auth.json");
    writeFileSync(wrong, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("puzzle:nope").toString("base64") } } }));
    const bad = await spawnCliAsync(["ls", ref, "--registry-ca", pki.caCert, "--registry-auth", wrong, ...cache]);
    expect([bad.code, bad.stderr]).toEqual([3, expect.stringMatching(/refused access[\s\S]*check the credentials for 127\.0\.0\.1:\d+ in .*wrong-auth\.json/)]);
  });
});

describe("registry: bearer tokens from a token service", () => {
  let reg: RegistryServer;
  let tok: TokenServer;
  beforeAll(async () => {
    tok = await startTokenServer(pki, { puzzle: "s3cret" }, 300);
    started.push(tok);
    reg = await startRegistry(
      { dir: join(work, "reg-token"), tls: { cert: pki.serverCert, key: pki.serverKey }, token: { realm: tok.realm, service: tok.service, issuer: tok.issuer, rootcertbundle: tok.rootcertbundle } },
      pki.caCert,
    );
    started.push(reg);
  });

  it("push with a pull,push token, read back with a pull token per repository; skopeo agrees", async () => {
    const auth = join(work, "auth-token.json");
    writeFileSync(auth, JSON.stringify({ auths: { [`https://${reg.host}`]: { username: "puzzle", password: "s3cret" } } }));
    const dir = layout("sekien-zstd", "zstd-token");
    const common = ["--registry-ca", pki.caCert, "--registry-auth", auth];
    const p = JSON.parse((await cli(["push", `${dir}:test`, `oci://${reg.host}/tok/zstd`, "--json", ...common])).stdout.toString());
    expect(tok.requests.some((r) => r.user === "puzzle" && r.scopes.includes("repository:tok/zstd:pull,push"))).toBe(true);
    tok.requests.length = 0;
    const extra = [...common, "--cache-dir", join(work, "cache-token")];
    expect(await snapshot(`oci://${reg.host}/tok/zstd@${p.digest}`, extra)).toEqual(await snapshot(`${dir}:test`, []));
    expect(tok.requests.length).toBeGreaterThan(0);
    expect(tok.requests.every((r) => r.user === "puzzle" && r.scopes.every((s) => s === "repository:tok/zstd:pull"))).toBe(true);
    const certDir = join(work, "skopeo-certs");
    const raw = (await exec("skopeo", ["inspect", "--raw", "--cert-dir", certDir, "--creds", "puzzle:s3cret", `docker://${reg.host}/tok/zstd:test`], { encoding: "buffer" })).stdout as Buffer;
    expect(`sha256:${(await import("node:crypto")).createHash("sha256").update(raw).digest("hex")}`).toBe(p.digest);
    // Anonymous tokens carry no access here.
    const anon = await spawnCliAsync(["ls", `oci://${reg.host}/tok/zstd:test`, "--registry-ca", pki.caCert, "--registry-auth", join(work, "empty-auth.json"), "--cache-max", "0"]);
    expect([anon.code, anon.stderr]).toEqual([3, expect.stringMatching(/refused access/)]);
  });
});
