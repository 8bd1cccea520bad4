/**
 * Test certificates, made with GnuTLS's certtool (Debian gnutls-bin; an oracle
 * we did not write, read by OpenSSL in Node and by GnuTLS in libnbd, QEMU and
 * nbd-client): a CA, a server certificate for 127.0.0.1 / 10.0.2.100 /
 * localhost, a client certificate from the same CA, and a client certificate
 * from a second ("rogue") CA. P-256 keys. Validity starts a day ago, so a
 * QEMU guest whose clock lags the host (RTC has 1 s resolution) accepts them.
 *
 * Client credential directories in the layout libnbd (`tls-certificates=DIR`)
 * and QEMU (`tls-creds-x509,dir=DIR`) read: ca-cert.pem, client-cert.pem,
 * client-key.pem.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCa: string;
  rogueClientCert: string;
  rogueClientKey: string;
  /**
   * libnbd/QEMU directories: CA only; CA + good client cert; CA + client cert
   * of the rogue CA; only the rogue CA (does not trust the server).
   */
  clientDirs: { caOnly: string; good: string; rogue: string; wrongCa: string };
}

function certtool(args: string[], cwd: string): void {
  execFileSync("certtool", ["--no-text", ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** certtool's date format, UTC. */
function day(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86400_000).toISOString().replace("T", " ").replace(/\..*$/, "");
}

function template(cwd: string, name: string, lines: string[]): string {
  const f = `${name}.tmpl`;
  writeFileSync(join(cwd, f), [...lines, `activation_date = "${day(-1)}"`, `expiration_date = "${day(30)}"`, ""].join("\n"));
  return f;
}

function key(cwd: string, name: string): void {
  certtool(["--generate-privkey", "--key-type", "ecdsa", "--outfile", `${name}-key.pem`], cwd);
}

function makeCa(cwd: string, name: string, cn: string): void {
  key(cwd, name);
  const t = template(cwd, name, [`cn = "${cn}"`, "ca", "cert_signing_key", "crl_signing_key"]);
  certtool(["--generate-self-signed", "--load-privkey", `${name}-key.pem`, "--template", t, "--outfile", `${name}-cert.pem`], cwd);
}

function issue(cwd: string, ca: string, name: string, lines: string[]): void {
  key(cwd, name);
  const t = template(cwd, name, [...lines, "signing_key", "encryption_key"]);
  certtool(
    ["--generate-certificate", "--load-privkey", `${name}-key.pem`, "--load-ca-certificate", `${ca}-cert.pem`, "--load-ca-privkey", `${ca}-key.pem`, "--template", t, "--outfile", `${name}-cert.pem`],
    cwd,
  );
}

function clientDir(dir: string, name: string, files: Record<string, string>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  for (const [to, from] of Object.entries(files)) copyFileSync(from, join(d, to));
  return d;
}

export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  makeCa(dir, "ca", "puzzlefs test CA");
  makeCa(dir, "rogue-ca", "rogue CA");
  // 10.0.2.100 is the server as the QEMU guest sees it (slirp guestfwd).
  issue(dir, "ca", "server", ['cn = "localhost"', 'dns_name = "localhost"', 'ip_address = "127.0.0.1"', 'ip_address = "10.0.2.100"', "tls_www_server"]);
  issue(dir, "ca", "client", ['cn = "alice"', "tls_www_client"]);
  issue(dir, "rogue-ca", "rogue-client", ['cn = "mallory"', "tls_www_client"]);
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p("ca-cert.pem"),
    serverCert: p("server-cert.pem"),
    serverKey: p("server-key.pem"),
    clientCert: p("client-cert.pem"),
    clientKey: p("client-key.pem"),
    rogueCa: p("rogue-ca-cert.pem"),
    rogueClientCert: p("rogue-client-cert.pem"),
    rogueClientKey: p("rogue-client-key.pem"),
    clientDirs: {
      caOnly: clientDir(dir, "client-ca-only", { "ca-cert.pem": p("ca-cert.pem") }),
      good: clientDir(dir, "client-good", { "ca-cert.pem": p("ca-cert.pem"), "client-cert.pem": p("client-cert.pem"), "client-key.pem": p("client-key.pem") }),
      rogue: clientDir(dir, "client-rogue", { "ca-cert.pem": p("ca-cert.pem"), "client-cert.pem": p("rogue-client-cert.pem"), "client-key.pem": p("rogue-client-key.pem") }),
      wrongCa: clientDir(dir, "client-wrong-ca", { "ca-cert.pem": p("rogue-ca-cert.pem") }),
    },
  };
}

/** A psktool key file (GnuTLS's own tool, the format nbdkit and libnbd read). */
export function makePskFile(file: string, user: string): string {
  execFileSync("psktool", ["-u", user, "-p", file], { stdio: ["ignore", "ignore", "pipe"] });
  return file;
}
