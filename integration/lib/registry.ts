/**
 * Real-peer helpers for the registry suites: Debian's `docker-registry`
 * (distribution 2.8) on 127.0.0.1 with a temporary config and storage, a
 * test CA and server certificate made with openssl, an htpasswd file, a tiny
 * bearer-token service (RS256 JWTs, as distribution's `auth.token` expects;
 * facts from shared/integration/registry-notes.md §3), and an HTTP proxy
 * that counts the bytes the registry serves and can flip a byte of blob
 * bodies. Everything listens on loopback and is stopped by the caller.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { createSign, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync, openSync, closeSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestPki } from "../../test/helpers/registry-pki.ts";

export { makePki, type TestPki } from "../../test/helpers/registry-pki.ts";

const exec = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** htpasswd with bcrypt cost 5 (`-B` default): distribution hashes on every request (notes §3). */
export async function makeHtpasswd(path: string, user: string, pass: string): Promise<void> {
  const { stdout } = await exec("htpasswd", ["-Bbn", user, pass]);
  writeFileSync(path, stdout);
}

export interface RegistryOptions {
  dir: string;
  port?: number;
  tls?: { cert: string; key: string };
  htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
}

export interface RegistryServer {
  host: string;
  port: number;
  storage: string;
  config: string;
  logFile: string;
  running(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** `docker-registry garbage-collect` (run it stopped). */
  garbageCollect(args?: string[]): Promise<string>;
}

function configYaml(o: RegistryOptions, port: number, storage: string): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  formatter: text",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "  redirect:",
    "    disable: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "  secret: puzzlefs-test-secret",
  ];
  if (o.tls) lines.push("  tls:", `    certificate: ${o.tls.cert}`, `    key: ${o.tls.key}`);
  if (o.htpasswd) lines.push("auth:", "  htpasswd:", "    realm: puzzlefs-test", `    path: ${o.htpasswd}`);
  if (o.token) {
    lines.push("auth:", "  token:", `    realm: ${o.token.realm}`, `    service: ${o.token.service}`, `    issuer: ${o.token.issuer}`, `    rootcertbundle: ${o.token.rootcertbundle}`);
  }
  return `${lines.join("\n")}\n`;
}

async function waitUp(url: string, ca: string | undefined, child: ChildProcess, logFile: string): Promise<void> {
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const mod = url.startsWith("https") ? https : http;
      const req = mod.get(url, { ca: ca ? readFileSync(ca) : undefined, timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not come up at ${url}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
}

/** Start docker-registry; `stop()` it in afterAll (also between fault steps: `start()` brings it back on the same port). */
export async function startRegistry(o: RegistryOptions, caForProbe?: string): Promise<RegistryServer> {
  mkdirSync(o.dir, { recursive: true });
  const port = o.port ?? (await freePort());
  const storage = join(o.dir, "storage");
  const config = join(o.dir, "config.yml");
  const logFile = join(o.dir, "registry.log");
  writeFileSync(config, configYaml(o, port, storage));
  let child: ChildProcess | null = null;
  const server: RegistryServer = {
    host: `127.0.0.1:${port}`,
    port,
    storage,
    config,
    logFile,
    running: () => child !== null && child.exitCode === null,
    async start() {
      if (server.running()) return;
      const fd = openSync(logFile, "a");
      child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", fd, fd] });
      closeSync(fd);
      await waitUp(`${o.tls ? "https" : "http"}://127.0.0.1:${port}/v2/`, caForProbe, child, logFile);
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise<void>((r) => c.once("exit", () => r()));
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
      child = null;
    },
    async garbageCollect(args = []) {
      const { stdout, stderr } = await exec("docker-registry", ["garbage-collect", ...args, config], { maxBuffer: 1 << 26 });
      return stdout + stderr;
    },
  };
  await server.start();
  return server;
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  rootcertbundle: string;
  /** Token requests received: scopes asked and whether credentials came along. */
  requests: Array<{ scopes: string[]; user: string | null }>;
  stop(): Promise<void>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** The distribution token service in miniature: RS256 JWT with the signing certificate in x5c. */
export async function startTokenServer(pki: TestPki, users: Record<string, string>, ttlSeconds = 300): Promise<TokenServer> {
  const key = readFileSync(pki.tokenKey);
  const der = Buffer.from(readFileSync(pki.tokenCert, "utf8").replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const requests: TokenServer["requests"] = [];
  const issuer = "puzzlefs-test-issuer";
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
    let user: string | null = null;
    if (m) {
      const [n, p] = Buffer.from(m[1]!, "base64").toString().split(":");
      if (n !== undefined && users[n] === p) user = n;
      else {
        res.writeHead(401).end();
        return;
      }
    }
    const scopes = u.searchParams.getAll("scope");
    requests.push({ scopes, user });
    const access = user ? scopes.map((s) => s.split(":")).map(([type, name, actions]) => ({ type, name, actions: (actions ?? "").split(",") })) : [];
    const now = Math.floor(Date.now() / 1000);
    const data = `${b64u(JSON.stringify({ typ: "JWT", alg: "RS256", x5c: [der.toString("base64")] }))}.${b64u(
      JSON.stringify({ iss: issuer, sub: user ?? "", aud: u.searchParams.get("service"), exp: now + ttlSeconds, nbf: now - 10, iat: now, jti: randomUUID(), access }),
    )}`;
    const sig = createSign("sha256").update(data).sign(key);
    const token = `${data}.${b64u(sig)}`;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: ttlSeconds }));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service: "puzzlefs-test-registry",
    issuer,
    rootcertbundle: pki.tokenCert,
    requests,
    stop: () => new Promise((r) => srv.close(() => r())),
  };
}

export interface CountingProxy {
  host: string;
  /** Response body bytes the registry sent through the proxy, in total and for blob GETs. */
  bytes: number;
  blobBytes: number;
  requests: Array<{ method: string; path: string; status: number; bytes: number }>;
  /** When set, blob GET bodies whose path matches get one byte flipped (XOR 0x01) at `offset`. */
  flip: { match: (path: string) => boolean; offset: number } | null;
  reset(): void;
  stop(): Promise<void>;
}

/** A plain-HTTP proxy on 127.0.0.1 in front of a plain-HTTP registry. */
export async function startProxy(target: string): Promise<CountingProxy> {
  const [thost, tport] = target.split(":");
  const proxy: CountingProxy = {
    host: "",
    bytes: 0,
    blobBytes: 0,
    requests: [],
    flip: null,
    reset() {
      proxy.bytes = 0;
      proxy.blobBytes = 0;
      proxy.requests.length = 0;
    },
    stop: async () => {},
  };
  const agent = new http.Agent({ keepAlive: true });
  const srv = http.createServer((req, res) => {
    const up = http.request({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
      const path = req.url ?? "";
      const isBlob = /\/blobs\/sha256:/.test(path) && req.method === "GET";
      const flip = isBlob && proxy.flip?.match(path) ? proxy.flip.offset : -1;
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let seen = 0;
      ur.on("data", (c: Buffer) => {
        if (flip >= seen && flip < seen + c.length) {
          c = Buffer.from(c);
          c[flip - seen] ^= 0x01;
        }
        seen += c.length;
        proxy.bytes += c.length;
        if (isBlob) proxy.blobBytes += c.length;
        res.write(c);
      });
      ur.on("end", () => {
        proxy.requests.push({ method: req.method ?? "", path, status: ur.statusCode ?? 0, bytes: seen });
        res.end();
      });
      ur.on("error", () => res.destroy());
    });
    up.on("error", () => {
      res.writeHead(502).end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  proxy.host = `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  proxy.stop = () =>
    new Promise((r) => {
      agent.destroy();
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return proxy;
}

export interface ServeProcess {
  port: number;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

const CLI_ENTRY = join(import.meta.dirname, "..", "..", "test", "helpers", "cli-entry.ts");

/** `puzzlefs serve ARGS --listen 127.0.0.1:0` from the sources; resolves once it listens. */
export async function startServe(args: string[], opts: { env?: NodeJS.ProcessEnv; port?: number } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI_ENTRY, "serve", ...args, "--listen", `127.0.0.1:${opts.port ?? 0}`], {
    stdio: ["ignore", "pipe", "pipe"],
    env: opts.env ?? process.env,
    cwd: join(import.meta.dirname, "..", ".."),
  });
  let text = "";
  const append = (b: Buffer) => (text += b.toString());
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await done;
    clearTimeout(t);
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`puzzlefs serve not ready after 120 s:\n${text}`)), 120_000);
      const check = () => {
        const m = /puzzlefs serve: listening on 127\.0\.0\.1:(\d+)/.exec(text);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout!.on("data", check);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`puzzlefs serve exited ${code}:\n${text}`));
      });
    });
    return { port, output: () => text, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
