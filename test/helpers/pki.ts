/**
 * Test certificates, made with Debian's openssl (an oracle we did not write):
 * a CA, a server certificate for 127.0.0.1 / localhost, a client certificate
 * from the same CA, and a client certificate from a second ("rogue") CA.
 * P-256 keys: a whole set takes ~0.1 s.
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

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function key(cwd: string, file: string): void {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file], cwd);
}

function makeCa(cwd: string, name: string, cn: string): void {
  key(cwd, `${name}-key.pem`);
  openssl(
    ["req", "-x509", "-new", "-key", `${name}-key.pem`, "-out", `${name}-cert.pem`, "-days", "30", "-subj", `/CN=${cn}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    cwd,
  );
}

function issue(cwd: string, ca: string, name: string, cn: string, ext: string): void {
  key(cwd, `${name}-key.pem`);
  openssl(["req", "-new", "-key", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], cwd);
  writeFileSync(join(cwd, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${ext}\n`);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}-cert.pem`, "-CAkey", `${ca}-key.pem`, "-CAcreateserial", "-out", `${name}-cert.pem`, "-days", "30", "-extfile", `${name}.ext`],
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
  issue(dir, "ca", "server", "localhost", "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.2.100,DNS:localhost");
  issue(dir, "ca", "client", "alice", "extendedKeyUsage=clientAuth");
  issue(dir, "rogue-ca", "rogue-client", "mallory", "extendedKeyUsage=clientAuth");
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
