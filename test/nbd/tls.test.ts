/**
 * STARTTLS against real TLS clients: libnbd (nbdinfo, nbdcopy, python3-libnbd;
 * GnuTLS), QEMU (qemu-img with a tls-creds-x509 object) and node:tls for what
 * those cannot be told to do (TLS 1.2 only, clear text after the ACK).
 * Certificates come from openssl, keys from psktool (test/helpers/pki.ts).
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawFileDevice } from "../../src/nbd/rawfile.ts";
import type { ConnectionStats } from "../../src/nbd/server.ts";
import { TlsMode } from "../../src/nbd/starttls.ts";
import { ServerTls, checkTlsMaterial, parsePskFile } from "../../src/nbd/tls.ts";
import { type Pki, makePki, makePskFile } from "../helpers/pki.ts";
import { pattern } from "./helpers/memdev.ts";
import { RawClient, type Running, pyCase, run, sha256, startServer } from "./helpers/net.ts";
import { OPT, type OptReply, REP, goData, option } from "./helpers/proto.ts";

const MiB = 1 << 20;
const SIZE = 4 * MiB;
const bytes = pattern(SIZE, 77);
const ERR_TLS_REQD = 0x80000005;

const dir = mkdtempSync(join(tmpdir(), "pfs-tls-"));
let pki: Pki;
let psk: string;
let raw: RawFileDevice;
const servers: Record<"require" | "verify" | "on" | "psk", Running> = {} as never;
const ended = new Map<Running, ConnectionStats[]>();

async function start(tls: ServerTls, handshakeTimeoutMs?: number): Promise<Running> {
  const r = await startServer({ disk: { device: raw, description: "raw image" } }, { tls, handshakeTimeoutMs });
  const list: ConnectionStats[] = [];
  ended.set(r, list);
  r.server.on("connection-end", (s: ConnectionStats) => list.push(s));
  return r;
}

/** Wait until `s` has no open connection. */
async function quiet(s: Running): Promise<void> {
  for (let i = 0; s.server.connectionCount > 0; i++) {
    if (i > 500) throw new Error(`${s.server.connectionCount} connections still open`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Run `action` on a quiet server; the connections that ended because of it, in order. */
async function endsOf(s: Running, action: () => Promise<unknown>): Promise<ConnectionStats[]> {
  await quiet(s);
  const list = ended.get(s)!;
  const before = list.length;
  await action();
  await quiet(s);
  return list.slice(before);
}

beforeAll(async () => {
  pki = makePki(join(dir, "pki"));
  psk = makePskFile(join(dir, "keys.psk"), "alice");
  await writeFile(join(dir, "disk.img"), bytes);
  raw = await RawFileDevice.open(join(dir, "disk.img"));
  const cert = readFileSync(pki.serverCert);
  const key = readFileSync(pki.serverKey);
  servers.require = await start(new ServerTls({ mode: TlsMode.REQUIRE, cert, key }));
  servers.verify = await start(new ServerTls({ mode: TlsMode.REQUIRE, cert, key, ca: readFileSync(pki.ca), verifyPeer: true }));
  servers.on = await start(new ServerTls({ mode: TlsMode.ON, cert, key }));
  servers.psk = await start(new ServerTls({ mode: TlsMode.REQUIRE, psk: parsePskFile(await readFile(psk, "utf8"), psk) }));
});

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s?.stop()));
  await raw?.close();
  await rm(dir, { recursive: true, force: true });
});

const nbds = (s: Running, q: string, name = "disk") => `nbds://127.0.0.1:${s.port}/${name}?${q}`;

describe("libnbd with --tls=require-equivalent URIs", () => {
  it("nbdinfo negotiates TLS 1.3 and sees the export", async () => {
    const r = await run("nbdinfo", [nbds(servers.require, `tls-certificates=${pki.clientDirs.caOnly}`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/protocol: newstyle-fixed with TLS, using structured packets/);
    expect(r.stdout).toMatch(/export-size: 4194304/);
    const list = await run("nbdinfo", ["--list", "--json", `nbds://127.0.0.1:${servers.require.port}/?tls-certificates=${pki.clientDirs.caOnly}`]);
    expect(JSON.parse(list.stdout).exports.map((e: { "export-name": string }) => e["export-name"])).toEqual(["disk"]);
  });

  it("nbdcopy over TLS copies the export byte for byte", async () => {
    const out = join(dir, "copy.img");
    const conns = await endsOf(servers.require, async () => {
      const r = await run("nbdcopy", [nbds(servers.require, `tls-certificates=${pki.clientDirs.caOnly}`), out]);
      expect(r.code, r.stderr).toBe(0);
    });
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
    expect(conns.length).toBeGreaterThanOrEqual(1);
    expect(conns.every((c) => c.tls !== undefined)).toBe(true);
    expect(conns.find((c) => c.bytes > 0)?.tls?.protocol).toMatch(/^TLSv1\.3 TLS_/);
  });

  it("after STARTTLS the client negotiates structured replies and base:allocation afresh", async () => {
    const r = await pyCase<Record<string, unknown>>("tls_state", nbds(servers.require, `tls-certificates=${pki.clientDirs.caOnly}`));
    expect(r).toEqual({ tls_negotiated: true, structured: true, meta: true, size: SIZE, first: sha256(bytes.subarray(0, 65536)) });
  });

  it("a client that does not trust the server's CA refuses it", async () => {
    const r = await run("nbdinfo", ["--size", nbds(servers.require, `tls-certificates=${pki.clientDirs.wrongCa}`)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate|verif/i);
  });
});

describe("a plain-text client against --tls require", () => {
  it("nbdinfo without TLS is refused", async () => {
    const r = await run("nbdinfo", ["--size", servers.require.uri("disk")]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
  });

  it("libnbd in option mode gets an error for LIST, INFO and GO and never learns an export name", async () => {
    const r = await pyCase<Record<string, unknown>>("tls_plain", servers.require.uri(), "disk");
    expect(r).toEqual({ list: "ENOTSUP", listed: [], info: "ENOTSUP", go: "ENOTSUP", tls_negotiated: false, still_negotiating: true });
  });

  it("a raw socket sees NBD_REP_ERR_TLS_REQD for each option and a disconnect for EXPORT_NAME", async () => {
    const c = await RawClient.connect(servers.require.port);
    try {
      await c.handshake();
      for (const o of [option(OPT.LIST), option(OPT.INFO, goData("disk")), option(OPT.GO, goData("disk")), option(OPT.STRUCTURED_REPLY), option(99)]) {
        c.send(o);
        const r = (await c.reply()) as OptReply;
        expect([r.option, r.type]).toEqual([o.readUInt32BE(8), ERR_TLS_REQD]);
        expect(r.data.toString()).not.toContain("disk");
      }
      c.send(option(OPT.EXPORT_NAME, Buffer.from("disk")));
      await c.waitClosed();
      expect(c.reader.pending).toBe(0);
    } finally {
      c.close();
    }
  });
});

describe("client certificates (--tls-verify-peer)", () => {
  it("a client certificate from the CA is accepted, and its CN is logged", async () => {
    const conns = await endsOf(servers.verify, async () => {
      const r = await run("nbdinfo", ["--size", nbds(servers.verify, `tls-certificates=${pki.clientDirs.good}`)]);
      expect(r.stdout.trim(), r.stderr).toBe(String(SIZE));
    });
    expect(conns.map((c) => c.tls?.identity)).toEqual(["CN=alice"]);
  });

  it("no client certificate, or one from another CA, is refused", async () => {
    for (const d of [pki.clientDirs.caOnly, pki.clientDirs.rogue]) {
      const [c, ...more] = await endsOf(servers.verify, async () => {
        const r = await run("nbdinfo", ["--size", nbds(servers.verify, `tls-certificates=${d}`)]);
        expect(r.code, d).not.toBe(0);
      });
      expect(more).toEqual([]);
      expect(c?.export).toBeUndefined();
      // OpenSSL ends the handshake (requestCert + rejectUnauthorized). GnuTLS does
      // not even send a certificate whose issuer is not among the server's CAs.
      expect(c?.reason).toBe("TLS handshake failed: ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE");
    }
  });

  it("a certificate of another CA that is sent anyway (node:tls client) is rejected after the handshake", async () => {
    const conns = await endsOf(servers.verify, async () => {
      const c = await RawClient.connect(servers.verify.port);
      await c.handshake();
      c.send(option(OPT.STARTTLS));
      expect(((await c.reply()) as OptReply).type).toBe(REP.ACK);
      // TLS 1.3: the client finishes first and may even send; the server's verdict closes the connection.
      await c.startTls({ ca: readFileSync(pki.ca), servername: "localhost", cert: readFileSync(pki.rogueClientCert), key: readFileSync(pki.rogueClientKey) }).catch(() => undefined);
      c.send(option(OPT.LIST));
      await c.waitClosed();
      expect(c.reader.pending).toBe(0); // no reply to LIST
    });
    expect(conns.map((c) => c.reason)).toEqual([expect.stringMatching(/^client certificate rejected: [A-Z_]+ \(CN=mallory\)$/)]);
  });

  it("without --tls-verify-peer no client certificate is needed", async () => {
    const r = await run("nbdinfo", ["--size", nbds(servers.require, `tls-certificates=${pki.clientDirs.caOnly}`)]);
    expect(r.stdout.trim(), r.stderr).toBe(String(SIZE));
  });
});

describe("QEMU's tls-creds-x509", () => {
  const opts = (s: Running, d: string) => [
    "--object", `tls-creds-x509,id=tls0,dir=${d},endpoint=client`,
    "--image-opts", `driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=${s.port},export=disk,tls-creds=tls0`,
  ];

  it("qemu-img convert reads the export over TLS, with and without a client certificate", async () => {
    for (const [s, d] of [[servers.require, pki.clientDirs.caOnly], [servers.verify, pki.clientDirs.good]] as const) {
      const out = join(dir, "qemu.img");
      const r = await run("qemu-img", ["convert", "-O", "raw", ...opts(s, d), out]);
      expect(r.code, r.stderr).toBe(0);
      expect(sha256(await readFile(out))).toBe(sha256(bytes));
      await rm(out);
    }
  });

  it("qemu-img without a client certificate cannot open the verify-peer server", async () => {
    const r = await run("qemu-img", ["info", ...opts(servers.verify, pki.clientDirs.caOnly)]);
    expect(r.code).not.toBe(0);
  });
});

describe("pre-shared keys (psktool file, TLS 1.3)", () => {
  it("nbdcopy with the right key copies byte for byte; the identity is logged", async () => {
    const out = join(dir, "psk.img");
    const conns = await endsOf(servers.psk, async () => {
      const r = await run("nbdcopy", [`nbds://alice@127.0.0.1:${servers.psk.port}/disk?tls-psk-file=${psk}`, out]);
      expect(r.code, r.stderr).toBe(0);
    });
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
    expect(conns.find((c) => c.bytes > 0)?.tls).toEqual({ protocol: expect.stringMatching(/^TLSv1\.3 TLS_(AES_128_GCM|CHACHA20_POLY1305)_SHA256$/), identity: "alice" });
  });

  it("a wrong key or an unknown identity fails the handshake", async () => {
    const wrong = join(dir, "wrong.psk");
    const text = await readFile(psk, "utf8");
    await writeFile(wrong, text.replace(/:(.)/, (_m, c: string) => `:${c === "0" ? "1" : "0"}`));
    const bob = makePskFile(join(dir, "bob.psk"), "bob");
    for (const [user, file, why] of [["alice", wrong, /TLS handshake failed/], ["bob", bob, /unknown PSK identity "bob"/]] as const) {
      const conns = await endsOf(servers.psk, async () => {
        const r = await run("nbdinfo", ["--size", `nbds://${user}@127.0.0.1:${servers.psk.port}/disk?tls-psk-file=${file}`]);
        expect(r.code, user).not.toBe(0);
      });
      expect(conns.map((c) => c.reason)).toEqual([expect.stringMatching(why)]);
    }
  });
});

describe("node:tls as the client: versions and clear text around the upgrade", () => {
  /** Negotiate in clear text up to the STARTTLS ACK. */
  async function upToAck(s: Running): Promise<RawClient> {
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.send(option(OPT.STARTTLS));
    const ack = (await c.reply()) as OptReply;
    expect([ack.option, ack.type]).toEqual([OPT.STARTTLS, REP.ACK]);
    return c;
  }

  async function goAndRead(c: RawClient): Promise<Buffer> {
    c.send(option(OPT.GO, goData("disk")));
    for (let r = (await c.reply()) as OptReply; r.type !== REP.ACK; r = (await c.reply()) as OptReply) expect(r.type).toBe(REP.INFO);
    c.reader.phase = "transmission";
    c.reader.expectRead(5, 4096);
    c.send(Buffer.from("25609513" + "00000000" + "0000000000000005" + "0000000000010000" + "00001000", "hex"));
    return ((await c.reply()) as { data: Buffer }).data;
  }

  it("TLS 1.2 with a certificate works; TLS 1.1 is refused", async () => {
    const c = await upToAck(servers.require);
    const t = await c.startTls({ ca: readFileSync(pki.ca), servername: "localhost", maxVersion: "TLSv1.2" });
    expect(t.getProtocol()).toBe("TLSv1.2");
    expect(await goAndRead(c)).toEqual(bytes.subarray(65536, 65536 + 4096));
    c.close();
    const conns = await endsOf(servers.require, async () => {
      const old = await upToAck(servers.require);
      await expect(old.startTls({ ca: readFileSync(pki.ca), servername: "localhost", minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" })).rejects.toThrow();
      old.close();
    });
    // The server, not the client, said no.
    expect(conns.map((x) => x.reason)).toEqual([expect.stringMatching(/^TLS handshake failed: ERR_SSL_UNSUPPORTED_PROTOCOL$/)]);
  });

  it("PSK works with TLS 1.2 PSK suites too", async () => {
    const key = parsePskFile(await readFile(psk, "utf8"), psk).get("alice")!;
    const c = await upToAck(servers.psk);
    const t = await c.startTls({ maxVersion: "TLSv1.2", ciphers: "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256", pskCallback: () => ({ identity: "alice", psk: key }), checkServerIdentity: () => undefined });
    expect(t.getProtocol()).toBe("TLSv1.2");
    expect(await goAndRead(c)).toEqual(bytes.subarray(65536, 65536 + 4096));
    c.close();
  });

  it("an option pipelined behind STARTTLS is never answered: the connection is dropped without the ACK", async () => {
    const conns = await endsOf(servers.on, async () => {
      const c = await RawClient.connect(servers.on.port);
      await c.handshake();
      c.send(Buffer.concat([option(OPT.STARTTLS), option(OPT.LIST)]));
      await c.waitClosed();
      expect(c.reader.pending).toBe(0);
    });
    expect(conns[0]).toMatchObject({ hard: true, reason: expect.stringMatching(/after NBD_OPT_STARTTLS without waiting/) });
  });

  it("clear text instead of a ClientHello fails the handshake and drops the connection", async () => {
    const conns = await endsOf(servers.on, async () => {
      const c = await upToAck(servers.on);
      c.send(option(OPT.LIST));
      await c.waitClosed();
    });
    expect(conns[0]).toMatchObject({ hard: true, reason: expect.stringMatching(/TLS handshake failed/) });
  });

  it("a client that stalls after the ACK is dropped by the handshake timeout", async () => {
    const s = await start(new ServerTls({ mode: TlsMode.ON, cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }), 300);
    try {
      const conns = await endsOf(s, async () => {
        const c = await upToAck(s);
        await c.waitClosed(5_000);
      });
      expect(conns[0]?.reason).toMatch(/handshake not finished after 300 ms/);
    } finally {
      await s.stop();
    }
  });

  it("--tls on serves plain clients and TLS clients alike", async () => {
    const plain = await run("nbdinfo", ["--size", servers.on.uri("disk")]);
    expect(plain.stdout.trim(), plain.stderr).toBe(String(SIZE));
    const secure = await run("nbdinfo", ["--size", nbds(servers.on, `tls-certificates=${pki.clientDirs.caOnly}`)]);
    expect(secure.stdout.trim(), secure.stderr).toBe(String(SIZE));
  });
});

describe("TLS material checks", () => {
  it("parses psktool files and rejects short keys, duplicates and garbage with a hint", () => {
    const k = "ab".repeat(32);
    expect([...parsePskFile(`# keys\nalice:${k}\n\nbob:${"cd".repeat(16)}\n`, "f").keys()]).toEqual(["alice", "bob"]);
    expect(() => parsePskFile("alice:abcd\n", "f")).toThrow(/^f:1: the key of "alice" is 2 bytes; it must be 16 to 256$/);
    expect(() => parsePskFile(`a:${k}\na:${k}\n`, "f")).toThrow(/f:2: identity "a" appears twice/);
    expect(() => parsePskFile("alice\n", "f")).toThrow(/f:1: not USERNAME:HEXKEY/);
    expect(() => parsePskFile(`alice:${k}x\n`, "f")).toThrow(/f:1: not USERNAME:HEXKEY/);
    expect(() => parsePskFile("\n# nothing\n", "f")).toThrow(/f: no USERNAME:HEXKEY lines/);
  });

  it("accepts a matching certificate and key, and refuses a foreign key, an expired certificate and a bad CA", () => {
    const m = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), ca: readFileSync(pki.ca) };
    const names = { cert: "cert.pem", key: "key.pem", ca: "ca.pem" };
    expect(() => checkTlsMaterial(m, names)).not.toThrow();
    expect(() => checkTlsMaterial({ ...m, key: readFileSync(pki.clientKey) }, names)).toThrow(/key\.pem is not the private key of the certificate in cert\.pem/);
    expect(() => checkTlsMaterial(m, names, new Date(Date.now() + 400 * 86400_000))).toThrow(/cert\.pem: the certificate is valid from .* not now/);
    expect(() => checkTlsMaterial({ ...m, cert: Buffer.from("junk") }, names)).toThrow(/cert\.pem: not a PEM certificate/);
    expect(() => checkTlsMaterial({ ...m, key: readFileSync(pki.serverCert) }, names)).toThrow(/key\.pem: not a PEM private key/);
    expect(() => checkTlsMaterial({ ...m, ca: Buffer.from("nothing here") }, names)).toThrow(/ca\.pem: no PEM certificate/);
  });

  it("ServerTls refuses contradictory settings", () => {
    const cert = readFileSync(pki.serverCert);
    const key = readFileSync(pki.serverKey);
    expect(() => new ServerTls({ mode: TlsMode.ON })).toThrow(/a certificate and key/);
    expect(() => new ServerTls({ mode: TlsMode.ON, cert, key, verifyPeer: true })).toThrow(/needs a CA bundle/);
    expect(() => new ServerTls({ mode: TlsMode.ON, cert, key, psk: new Map() })).toThrow(/not both/);
    expect(() => new ServerTls({ mode: TlsMode.ON, cert: key, key: cert })).toThrow(/cannot use the certificate/);
  });
});
