/**
 * The server side of NBD_OPT_STARTTLS on node:tls (proto.md "TLS support"):
 * one SecureContext per server, and `upgrade()`, which turns a connection's
 * plain socket into a TLSSocket right after the STARTTLS ACK was written.
 *
 * - Versions: TLS 1.2 and 1.3 (the spec: "MUST support TLS version 1.2,
 *   SHOULD support any later versions"); Node negotiates 1.3 when the client
 *   offers it.
 * - X.509: a server certificate and key; with `verifyPeer`, clients must
 *   present a certificate that chains to `ca` (requestCert + rejectUnauthorized).
 * - PSK: `username:hexkey` lines (the format of GnuTLS psktool, which nbdkit
 *   and libnbd read). Node's `pskCallback` is documented with TLS 1.2 cipher
 *   suites, and OpenSSL's PSK callback also serves TLS 1.3 when the suite's
 *   hash is SHA-256, so the TLS 1.3 suites are limited to the two SHA-256
 *   ones in PSK mode; TLS 1.2 PSK suites (all ECDHE/DHE or AEAD) are enabled
 *   explicitly, Node's defaults exclude them. Tested against libnbd (GnuTLS).
 *
 * A bare `new TLSSocket(socket, {isServer: true})` gets none of tls.Server's
 * post-handshake checks (lib/_tls_wrap.js onServerSocketSecure), so the
 * client-certificate verdict is read here, and anything unclear fails closed.
 */
import { X509Certificate, createPrivateKey, randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { type SecureContext, TLSSocket, createSecureContext } from "node:tls";
import { PfsError } from "../common/errors.ts";
import { TlsMode } from "./starttls.ts";

export interface ServerTlsOptions {
  mode: typeof TlsMode.ON | typeof TlsMode.REQUIRE;
  /** PEM server certificate (chain) and private key; absent in PSK mode. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** PEM CA bundle that client certificates must chain to (with verifyPeer). */
  ca?: string | Buffer;
  verifyPeer?: boolean;
  /** PSK identities and keys (parsePskFile). */
  psk?: ReadonlyMap<string, Buffer>;
}

/** What a finished handshake tells the connection log. */
export interface TlsPeer {
  /** e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384". */
  protocol: string;
  /** Client certificate subject CN, or PSK identity, or undefined (no client authentication). */
  identity: string | undefined;
}

/** Smallest PSK we accept: 128 bits. psktool makes 256-bit keys by default. */
export const MIN_PSK_BYTES = 16;
/** OpenSSL accepts PSKs up to 512 bytes (PSK_MAX_PSK_LEN); GnuTLS less. */
export const MAX_PSK_BYTES = 256;

const PSK_TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
const PSK_TLS12_SUITES = [
  "ECDHE-PSK-CHACHA20-POLY1305",
  "DHE-PSK-AES256-GCM-SHA384",
  "DHE-PSK-AES128-GCM-SHA256",
  "DHE-PSK-CHACHA20-POLY1305",
  "PSK-AES256-GCM-SHA384",
  "PSK-AES128-GCM-SHA256",
  "PSK-CHACHA20-POLY1305",
].join(":");

/** Parse a psktool file: `identity:hexkey` per line; blank lines and `#` comments skipped. */
export function parsePskFile(text: string, file: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${file}:${i + 1}`;
    const colon = line.lastIndexOf(":");
    const id = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (colon <= 0 || !/^([0-9a-fA-F]{2})+$/.test(hex)) {
      throw PfsError.usage(`${where}: not USERNAME:HEXKEY`, `make the file with: psktool -u USERNAME -p ${file}`);
    }
    const key = Buffer.from(hex, "hex");
    if (key.length < MIN_PSK_BYTES || key.length > MAX_PSK_BYTES) {
      throw PfsError.usage(`${where}: the key of "${id}" is ${key.length} bytes; it must be ${MIN_PSK_BYTES} to ${MAX_PSK_BYTES}`, `make a new one with: psktool -u ${id} -p ${file}`);
    }
    if (out.has(id)) throw PfsError.usage(`${where}: identity "${id}" appears twice`, "keep one line per identity");
    out.set(id, key);
  });
  if (out.size === 0) throw PfsError.usage(`${file}: no USERNAME:HEXKEY lines`, `make the file with: psktool -u USERNAME -p ${file}`);
  return out;
}

/**
 * Check TLS material before serving: certificate and key parse, belong
 * together and the certificate is valid now; the CA bundle parses. Throws a
 * usage error that says how to fix it. `names` labels each input in messages.
 */
export function checkTlsMaterial(m: { cert: Buffer; key: Buffer; ca?: Buffer }, names: { cert: string; key: string; ca?: string }, now = new Date()): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.cert);
  } catch (e) {
    throw PfsError.usage(`${names.cert}: not a PEM certificate (${(e as Error).message})`, "give the server certificate, e.g. made with: openssl req -x509 ... -out server-cert.pem");
  }
  let key;
  try {
    key = createPrivateKey(m.key);
  } catch (e) {
    throw PfsError.usage(`${names.key}: not a PEM private key, or it is encrypted (${(e as Error).message})`, "give the unencrypted private key of the certificate (openssl pkey -in KEY -out plain-key.pem)");
  }
  if (!cert.checkPrivateKey(key)) {
    throw PfsError.usage(`${names.key} is not the private key of the certificate in ${names.cert}`, "give the key the certificate was issued for");
  }
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from || now > to) {
    throw PfsError.usage(`${names.cert}: the certificate is valid from ${cert.validFrom} to ${cert.validTo}, not now`, "renew the certificate");
  }
  if (m.ca) {
    const pems = m.ca.toString("latin1").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0) throw PfsError.usage(`${names.ca}: no PEM certificate in the file`, "give the CA certificate(s) that sign client certificates");
    for (const p of pems) {
      try {
        new X509Certificate(p);
      } catch (e) {
        throw PfsError.usage(`${names.ca}: a certificate does not parse (${(e as Error).message})`, "give PEM CA certificates");
      }
    }
  }
}

export class ServerTls {
  readonly mode: ServerTlsOptions["mode"];
  readonly verifyPeer: boolean;
  readonly psk: boolean;
  private readonly context: SecureContext;
  private readonly keys: ReadonlyMap<string, Buffer> | undefined;

  constructor(o: ServerTlsOptions) {
    this.mode = o.mode;
    this.verifyPeer = o.verifyPeer === true;
    this.keys = o.psk;
    this.psk = o.psk !== undefined;
    if (this.psk && (o.cert || o.key)) throw PfsError.usage("TLS: give certificates or pre-shared keys, not both");
    if (!this.psk && !(o.cert && o.key)) throw PfsError.usage("TLS: a certificate and key (or pre-shared keys) are needed");
    if (this.verifyPeer && !o.ca) throw PfsError.usage("TLS: verifying client certificates needs a CA bundle");
    if (this.verifyPeer && this.psk) throw PfsError.usage("TLS: client certificates cannot be verified in PSK mode");
    try {
      this.context = createSecureContext({
        minVersion: "TLSv1.2",
        maxVersion: "TLSv1.3",
        // PSK: our order (AES-128-GCM first, hardware-accelerated almost everywhere)
        // wins over GnuTLS's, which would pick ChaCha20 once AES-256-GCM (SHA-384) is out.
        ...(this.psk ? { ciphers: `${PSK_TLS13_SUITES}:${PSK_TLS12_SUITES}`, honorCipherOrder: true } : { cert: o.cert, key: o.key }),
        ...(o.ca ? { ca: o.ca } : {}),
      });
    } catch (e) {
      throw PfsError.usage(`TLS: cannot use the certificate, key or CA: ${(e as Error).message}`, "check them with: openssl x509 -in CERT -noout -text");
    }
  }

  /**
   * Start TLS on `raw`, whose last clear-text write was the STARTTLS ACK. Must
   * run in the same tick as that write: then no byte of the client's
   * ClientHello can have been read into the plain socket's buffer (the caller
   * checks that buffer is empty). `done` is called once: with the peer on
   * success, with a reason after which the caller drops the connection.
   */
  upgrade(raw: Socket, done: (r: { peer: TlsPeer } | { error: string }) => void): TLSSocket {
    let pskIdentity: string | undefined;
    let settled = false;
    const finish = (r: { peer: TlsPeer } | { error: string }) => {
      if (settled) return;
      settled = true;
      done(r);
    };
    const s = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.context,
      requestCert: this.verifyPeer,
      rejectUnauthorized: this.verifyPeer,
      ...(this.keys
        ? {
            pskCallback: (_sock: TLSSocket, identity: string) => {
              pskIdentity = identity;
              // Unknown identities get a random key: the handshake then fails
              // like a wrong key does, and does not tell which names exist (Node tls docs).
              return this.keys!.get(identity) ?? randomBytes(32);
            },
          }
        : {}),
    });
    s.once("secure", () => {
      const cipher = s.getCipher();
      const protocol = `${s.getProtocol() ?? "TLS"} ${cipher?.standardName ?? cipher?.name ?? "?"}`;
      if (this.keys) {
        // Reaching "secure" with PSK suites means the client proved the key.
        return finish({ peer: { protocol, identity: pskIdentity } });
      }
      if (!this.verifyPeer) return finish({ peer: { protocol, identity: undefined } });
      const why = verifyError(s);
      const cn = s.getPeerCertificate()?.subject?.CN;
      if (why) {
        s.destroy();
        return finish({ error: `client certificate rejected: ${why}${cn ? ` (CN=${String(cn)})` : ""}` });
      }
      finish({ peer: { protocol, identity: cn === undefined ? "(no CN)" : `CN=${String(cn)}` } });
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      const psk = pskIdentity !== undefined && this.keys && !this.keys.has(pskIdentity) ? ` (unknown PSK identity "${pskIdentity}")` : "";
      finish({ error: `TLS handshake failed: ${e.code ?? e.message}${psk}` });
    });
    s.once("close", () => finish({ error: "connection closed during the TLS handshake" }));
    return s;
  }
}

/** The verification error of the client's certificate, or undefined if it chained to the CA. Fails closed. */
function verifyError(s: TLSSocket): string | undefined {
  const cert = s.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return "no client certificate";
  // tls.Server reads the same verdict from the TLS handle (lib/_tls_wrap.js, onServerSocketSecure).
  const ssl = (s as unknown as { ssl?: { verifyError?: () => (Error & { code?: string }) | null } }).ssl;
  if (typeof ssl?.verifyError !== "function") return "cannot read the verification result";
  const e = ssl.verifyError();
  return e ? (e.code ?? e.message) : undefined;
}
