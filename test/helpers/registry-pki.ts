/**
 * TEST-ONLY: certificates made with openssl for the registry TLS tests (stubs and
 * the real registry): a CA, a server certificate for 127.0.0.1/localhost
 * signed by it (the SAN IP is required), and a self-signed pair that signs
 * bearer tokens for distribution's `auth.token`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

export interface TestPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Self-signed certificate and key that sign bearer tokens. */
  tokenCert: string;
  tokenKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost signed by it, and a token-signing pair. */
export async function makePki(dir: string): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const p = (n: string) => join(dir, n);
  const ossl = (...a: string[]) => exec("openssl", a, { cwd: dir });
  await ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-keyout", p("ca.key"), "-out", p("ca.crt"), "-subj", "/CN=puzzlefs test CA");
  await ossl("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(p("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await ossl("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-sha256", "-extfile", p("san.ext"), "-out", p("server.crt"));
  await ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-keyout", p("token.key"), "-out", p("token.crt"), "-subj", "/CN=puzzlefs test token issuer");
  return { caCert: p("ca.crt"), caKey: p("ca.key"), serverCert: p("server.crt"), serverKey: p("server.key"), tokenCert: p("token.crt"), tokenKey: p("token.key") };
}

