/**
 * `puzzlefs serve` security options: the flag combinations, the file checks
 * (each error says how to fix it), and a spawned server with --tls require,
 * --tls-verify-peer and --allow, driven by nbdinfo/nbdcopy.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkRuleExports, loadSecurity, validateSecurity } from "../../src/cli/serve-security.ts";
import { attachInstructions } from "../../src/cli/serve.ts";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { AccessRules } from "../../src/nbd/access.ts";
import { pattern } from "../nbd/helpers/memdev.ts";
import { run, sha256 } from "../nbd/helpers/net.ts";
import { type Pki, makePki, makePskFile } from "../helpers/pki.ts";

const CLI = join(import.meta.dirname, "helpers", "cli.ts");
const ROOT = join(import.meta.dirname, "..", "..");
const img = pattern(2 << 20, 31);
let dir: string;
let pki: Pki;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pfs-serve-sec-"));
  pki = makePki(join(dir, "pki"));
  await writeFile(join(dir, "a.img"), img);
  await writeFile(join(dir, "b.img"), pattern(1 << 20, 32));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function usageError(f: () => unknown, re: RegExp): PfsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(ErrorCode.USAGE);
    expect((e as PfsError).message).toMatch(re);
    return e as PfsError;
  }
  throw new Error(`no error matching ${re}`);
}

async function usageErrorAsync(p: Promise<unknown>, re: RegExp): Promise<PfsError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(PfsError);
  expect((e as PfsError).code).toBe(ErrorCode.USAGE);
  expect((e as PfsError).message).toMatch(re);
  return e as PfsError;
}

describe("flag combinations", () => {
  it("defaults: TLS off, no rules, refusals answered with ERR_POLICY", () => {
    expect(validateSecurity({})).toEqual({ tls: "off", tlsCert: undefined, tlsKey: undefined, tlsCa: undefined, tlsVerifyPeer: false, tlsPsk: undefined, allow: [], allowFiles: [], denyAs: "policy" });
  });

  it("refuses contradictions, each with a hint", () => {
    const cases: [Record<string, unknown>, RegExp, RegExp][] = [
      [{ tls: "yes" }, /--tls: "yes" is not off, on or require/, /--tls require --tls-cert/],
      [{ tls: "require" }, /--tls require needs --tls-cert and --tls-key \(or --tls-psk\)/, /--tls-cert server-cert\.pem/],
      [{ tls: "on", tlsCert: "c" }, /needs --tls-cert and --tls-key/, /--tls-key/],
      [{ tlsCert: "c", tlsKey: "k" }, /--tls-cert, --tls-key given but --tls is off/, /add --tls on or --tls require/],
      [{ tlsVerifyPeer: true }, /--tls-verify-peer given but --tls is off/, /--tls on/],
      [{ tls: "on", tlsCert: "c", tlsKey: "k", tlsVerifyPeer: true }, /--tls-verify-peer needs --tls-ca/, /--tls-ca ca-cert\.pem/],
      [{ tls: "on", tlsCert: "c", tlsKey: "k", tlsCa: "a" }, /--tls-ca is used only with --tls-verify-peer/, /add --tls-verify-peer/],
      [{ tls: "on", tlsPsk: "p", tlsCert: "c" }, /--tls-psk cannot be combined with --tls-cert/, /not both/],
      [{ denyAs: "silent" }, /--deny-as: "silent" is not policy or unknown/, /^$/],
    ];
    for (const [flags, re, hint] of cases) {
      const e = usageError(() => validateSecurity(flags), re);
      expect(e.hint ?? "", String(re)).toMatch(hint);
    }
  });

  it("accepts certificate, verify-peer and PSK setups", () => {
    expect(validateSecurity({ tls: "require", tlsCert: "c", tlsKey: "k", tlsCa: "a", tlsVerifyPeer: true })).toMatchObject({ tls: "require", tlsVerifyPeer: true });
    expect(validateSecurity({ tls: "on", tlsPsk: "p", allow: ["x=1.2.3.4"], allowFile: ["f"], denyAs: "unknown" })).toMatchObject({ tlsPsk: "p", allow: ["x=1.2.3.4"], allowFiles: ["f"], denyAs: "unknown" });
  });
});

describe("file checks before serving", () => {
  const certs = () => ({ ...validateSecurity({}), tls: "require" as const, tlsCert: pki.serverCert, tlsKey: pki.serverKey });

  it("loads matching certificates and PSK files", async () => {
    const sec = await loadSecurity(certs());
    expect(sec.tls).toMatchObject({ mode: "require", psk: false, verifyPeer: false });
    const psk = makePskFile(join(dir, "k.psk"), "alice");
    expect((await loadSecurity({ ...certs(), tlsCert: undefined, tlsKey: undefined, tlsPsk: psk })).tls).toMatchObject({ psk: true });
  });

  it("names the flag and file of a missing, unreadable or mismatched input", async () => {
    await usageErrorAsync(loadSecurity({ ...certs(), tlsCert: join(dir, "nope.pem") }), /^--tls-cert .*nope\.pem: no such file$/);
    await usageErrorAsync(loadSecurity({ ...certs(), tlsKey: dir }), /^--tls-key .*: is a directory$/);
    const e = await usageErrorAsync(loadSecurity({ ...certs(), tlsKey: pki.clientKey }), /--tls-key .*client-key\.pem is not the private key of the certificate in --tls-cert .*server-cert\.pem/);
    expect(e.hint).toMatch(/the key the certificate was issued for/);
    await usageErrorAsync(loadSecurity({ ...certs(), tlsCa: join(dir, "a.img"), tlsVerifyPeer: true }), /--tls-ca .*a\.img: no PEM certificate in the file/);
    const bad = join(dir, "bad.psk");
    await writeFile(bad, "alice:abcd\n");
    await usageErrorAsync(loadSecurity({ ...certs(), tlsCert: undefined, tlsKey: undefined, tlsPsk: bad }), /bad\.psk:1: the key of "alice" is 2 bytes/);
    const allow = join(dir, "allow.txt");
    await writeFile(allow, "# rules\na 127.0.0.1\nb 10.0.0.0/40\n");
    await usageErrorAsync(loadSecurity({ ...validateSecurity({}), allowFiles: [allow] }), /allow\.txt:3: "10\.0\.0\.0\/40" is not an IP address or CIDR/);
  });

  it("a rule for an export that does not exist is an error (a typo would leave the real one open)", () => {
    const e = usageError(() => checkRuleExports(AccessRules.parse(["bse=127.0.0.1", "*=10.0.0.0/8"]), ["base", "delta"]), /--allow: there is no export "bse"/);
    expect(e.hint).toBe('rules name one of: "base", "delta", or * for all');
    expect(() => checkRuleExports(AccessRules.parse(["base=127.0.0.1"]), ["base"])).not.toThrow();
  });

  it("attach lines: nbds:// URIs, nbd-client certificate flags, QEMU tls-creds", () => {
    const info = new Map([["a", { size: 4096, description: "raw" }]]);
    const lines = attachInstructions({ host: "127.0.0.1", port: 10809 }, info, "a", { mode: "require", psk: false, verifyPeer: true });
    expect(lines).toEqual([
      'puzzlefs serve: listening on 127.0.0.1:10809; 1 export, default "a"; TLS required (client certificates required)',
      'export "a": 4096 bytes, raw',
      "  uri:        nbds://127.0.0.1:10809/a?tls-certificates=DIR",
      "  nbd-client: nbd-client 127.0.0.1 10809 /dev/nbd0 -N a -R -b 4096 -cacertfile ca-cert.pem -certfile client-cert.pem -keyfile client-key.pem",
      "  qemu:       qemu-system-x86_64 ... -object tls-creds-x509,id=tls0,dir=DIR,endpoint=client -blockdev driver=nbd,node-name=nbd0,server.type=inet,server.host=127.0.0.1,server.port=10809,export=a,tls-creds=tls0,read-only=on -device virtio-blk-pci,drive=nbd0",
    ]);
    const psk = attachInstructions({ path: "/run/s" }, info, "a", { mode: "on", psk: true, verifyPeer: false });
    expect(psk[0]).toMatch(/TLS offered \(pre-shared keys\)$/);
    expect(psk[2]).toBe("  uri:        nbds+unix:///a?socket=/run/s&tls-psk-file=PSKFILE");
    const commas = attachInstructions({ path: "/run/a,b" }, new Map([["x,y", { size: 1, description: "d" }]]), "x,y", { mode: "on", psk: false, verifyPeer: false });
    expect(commas[4]).toContain(" -blockdev driver=nbd,node-name=nbd0,server.type=unix,server.path=/run/a,,b,export=x,,y,tls-creds=tls0,read-only=on ");
  });
});

// ------------------------------------------------------------ spawned

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function startCli(args: string[]): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const p: Proc = { child, stdout: "", stderr: "", exited: new Promise((res) => child.on("exit", (code) => res(code))) };
  child.stdout!.on("data", (d) => (p.stdout += d));
  child.stderr!.on("data", (d) => (p.stderr += d));
  return p;
}

async function waitFor(p: Proc, re: RegExp, where: "stdout" | "stderr" = "stdout", ms = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = p[where].match(re);
    if (m) return m;
    if (p.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ${re} in ${where}: ${p.stdout}\nstderr: ${p.stderr}`);
}

async function stop(p: Proc): Promise<number | null> {
  if (p.child.exitCode === null) p.child.kill("SIGTERM");
  return p.exited;
}

describe("puzzlefs serve --tls require --tls-verify-peer --allow (spawned)", () => {
  it("serves TLS clients with certificates, refuses plain text, and logs refusals by address", async () => {
    const p = startCli([
      "serve", "--raw", `a=${join(dir, "a.img")}`, "--raw", `b=${join(dir, "b.img")}`, "--listen", "127.0.0.1:0",
      "--tls", "require", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.ca, "--tls-verify-peer",
      "--allow", "b=127.0.0.2",
    ]);
    try {
      const port = (await waitFor(p, /uri: +nbds:\/\/127\.0\.0\.1:(\d+)\/a\?tls-certificates=DIR\n/))[1]!;
      expect(p.stdout).toMatch(/TLS required \(client certificates required\)/);
      const q = `tls-certificates=${pki.clientDirs.good}`;
      const out = join(dir, "out.img");
      const cp = await run("nbdcopy", [`nbds://127.0.0.1:${port}/a?${q}`, out]);
      expect(cp.code, cp.stderr).toBe(0);
      expect(sha256(await readFile(out))).toBe(sha256(img));
      const list = await run("nbdinfo", ["--list", "--json", `nbds://127.0.0.1:${port}/?${q}`]);
      expect(JSON.parse(list.stdout).exports.map((e: { "export-name": string }) => e["export-name"])).toEqual(["a"]); // b is for 127.0.0.2
      const refused = await run("nbdinfo", ["--size", `nbds://127.0.0.1:${port}/b?${q}`]);
      expect(refused.stderr).toMatch(/server policy prevents NBD_OPT_GO/);
      const plain = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${port}/a`]);
      expect(plain.code).not.toBe(0);
      const noCert = await run("nbdinfo", ["--size", `nbds://127.0.0.1:${port}/a?tls-certificates=${pki.clientDirs.caOnly}`]);
      expect(noCert.code).not.toBe(0);
      await waitFor(p, /NBD_OPT_GO "b" refused by the access rules -> NBD_REP_ERR_POLICY/, "stderr");
    } finally {
      expect(await stop(p)).toBe(0);
    }
    expect(p.stderr).toMatch(/conn#\d+ 127\.0\.0\.1:\d+ export "a": \d+ requests, 2\.0 MiB read, 0 errors, [\d.]+ s, closed: NBD_CMD_DISC; TLSv1\.3 TLS_\w+ as CN=alice/);
    expect(p.stderr).toMatch(/conn#\d+ 127\.0\.0\.1:\d+: NBD_OPT_GO "b" refused by the access rules -> NBD_REP_ERR_POLICY/);
    expect(p.stderr).toMatch(/dropped: TLS handshake failed: ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE/);
  });

  it("exits 1 before serving when a TLS file is bad or a rule names no export", async () => {
    const badKey = startCli(["serve", "--raw", `a=${join(dir, "a.img")}`, "--listen", "127.0.0.1:0", "--tls", "on", "--tls-cert", pki.serverCert, "--tls-key", pki.clientKey]);
    expect(await badKey.exited).toBe(1);
    expect(badKey.stderr).toMatch(/is not the private key of the certificate in --tls-cert .*\n  hint: give the key the certificate was issued for\n/);
    expect(badKey.stdout).toBe("");
    const typo = startCli(["serve", "--raw", `a=${join(dir, "a.img")}`, "--listen", "127.0.0.1:0", "--allow", "aa=127.0.0.1"]);
    expect(await typo.exited).toBe(1);
    expect(typo.stderr).toMatch(/--allow: there is no export "aa"\n  hint: rules name one of: "a", or \* for all/);
  });
});
