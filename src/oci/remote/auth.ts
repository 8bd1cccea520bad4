/**
 * Registry authentication (distribution "token authentication" and RFC 7617
 * basic): credentials from the standard `auths` JSON files, the
 * `WWW-Authenticate` challenge parser, and an Authenticator that turns a 401
 * into a working `Authorization` header — Basic as-is, Bearer by asking the
 * challenge's realm for a token with the client's repository scope (and the
 * challenge's), refreshed when it expires or a 401 comes back.
 *
 * Credentials never travel over plain http off loopback (the transport's
 * scheme check covers the realm too), and never follow a redirect to
 * another origin (transport).
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import type { HttpTransport } from "./http.ts";

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (`identitytoken`): exchanged at the realm with a POST. */
  identityToken?: string;
  /** A ready bearer token (`registrytoken`). */
  registryToken?: string;
  /** Which file they came from, for messages. */
  source: string;
}

export interface CredentialLookup {
  /** `--registry-auth FILE`: only this file is read, and it must exist. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
}

/** The files looked at without --registry-auth, in order (containers-auth.json(5), then Docker's). */
export function defaultAuthFiles(env: NodeJS.ProcessEnv = process.env, home = homedir()): string[] {
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE) out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) out.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  out.push(join(env.DOCKER_CONFIG ?? join(home, ".docker"), "config.json"));
  return out;
}

/** `https://host:port/v1/` → `host:port`; `host/ns` stays `host/ns`. */
export function normalizeAuthKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/+(v[12]\/?)?$/, "");
}

function entryToCredentials(v: unknown, source: string): Credentials | null {
  if (typeof v !== "object" || v === null) return null;
  const e = v as Record<string, unknown>;
  const c: Credentials = { source };
  if (typeof e.auth === "string" && e.auth !== "") {
    const plain = Buffer.from(e.auth, "base64").toString("utf8");
    const colon = plain.indexOf(":");
    if (colon < 0) throw PfsError.format(source, `an "auth" entry is not base64 of user:password`);
    c.username = plain.slice(0, colon);
    c.password = plain.slice(colon + 1);
  }
  if (typeof e.username === "string") c.username = e.username;
  if (typeof e.password === "string") c.password = e.password;
  if (typeof e.identitytoken === "string" && e.identitytoken !== "") c.identityToken = e.identitytoken;
  if (typeof e.registrytoken === "string" && e.registrytoken !== "") c.registryToken = e.registrytoken;
  return c.username !== undefined || c.identityToken || c.registryToken ? c : null;
}

/** Credentials for `host/repo` in one parsed `auths` document: the longest matching key wins. */
export function findCredentials(doc: unknown, host: string, repo: string, source: string): Credentials | null {
  const auths = typeof doc === "object" && doc !== null ? (doc as { auths?: unknown }).auths : undefined;
  if (typeof auths !== "object" || auths === null) return null;
  const byKey = new Map<string, unknown>();
  for (const [k, v] of Object.entries(auths)) byKey.set(normalizeAuthKey(k), v);
  const parts = repo.split("/");
  for (let n = parts.length; n >= 0; n--) {
    const key = n === 0 ? host : `${host}/${parts.slice(0, n).join("/")}`;
    if (byKey.has(key)) return entryToCredentials(byKey.get(key), source);
  }
  return null;
}

async function readAuthFile(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!required && (code === "ENOENT" || code === "ENOTDIR")) return null;
    if (code === "ENOENT") throw PfsError.notFound(`registry credentials file ${path}`, "check the path given to --registry-auth");
    throw PfsError.io(`reading registry credentials ${path}`, e);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw PfsError.format(`registry credentials ${path}`, `not valid JSON (${(e as Error).message})`);
  }
}

export async function loadCredentials(host: string, repo: string, opts: CredentialLookup = {}): Promise<Credentials | null> {
  if (opts.file !== undefined) return findCredentials(await readAuthFile(opts.file, true), host, repo, opts.file);
  for (const f of defaultAuthFiles(opts.env, opts.home)) {
    const c = findCredentials(await readAuthFile(f, false), host, repo, f);
    if (c) {
      log.oci("credentials for %s/%s from %s", host, repo, f);
      return c;
    }
  }
  return null;
}

export interface Challenge {
  /** Lowercase scheme: "basic", "bearer", … */
  scheme: string;
  params: Record<string, string>;
}

/**
 * RFC 7235 challenges: `Bearer realm="…",service="…",scope="a:b:pull,push", Basic realm="x"`.
 * Quoted values may hold commas; several challenges may share one header.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const text = Array.isArray(header) ? header.join(", ") : (header ?? "");
  const out: Challenge[] = [];
  const tok = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
  let cur: Challenge | null = null;
  let i = 0;
  const skip = (re: RegExp) => {
    while (i < text.length && re.test(text[i]!)) i++;
  };
  while (i < text.length) {
    skip(/[\s,]/);
    tok.lastIndex = i;
    const m = tok.exec(text);
    if (!m) break;
    i = tok.lastIndex;
    skip(/\s/);
    if (text[i] !== "=") {
      cur = { scheme: m[0].toLowerCase(), params: {} };
      out.push(cur);
      continue;
    }
    i++;
    skip(/\s/);
    let value = "";
    if (text[i] === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) value += text[i] === "\\" ? text[++i] ?? "" : text[i];
      i++;
    } else {
      tok.lastIndex = i;
      const v = tok.exec(text);
      value = v ? v[0] : "";
      i = v ? tok.lastIndex : i;
    }
    if (cur) cur.params[m[0].toLowerCase()] = value;
  }
  return out;
}

interface Token {
  header: string;
  /** ms since epoch; refreshed a little before. */
  expiresAt: number;
}

const MAX_TOKEN_RESPONSE = 1 << 20;

/** Why a request stays unauthorized, with the fix. */
export function authError(registry: string, what: string, detail: string, creds: Credentials | null): PfsError {
  return new PfsError(ErrorCode.IO, `${what}: ${registry} refused access (${detail})`, {
    hint: creds
      ? `check the credentials for ${registry} in ${creds.source} and that they may pull (or push) this repository`
      : `the registry wants credentials: pass --registry-auth FILE (an "auths" JSON as skopeo login writes) or set REGISTRY_AUTH_FILE`,
    data: { what, registry, errno: "EACCES" },
  });
}

export class Authenticator {
  private basic = false;
  private bearer: { realm: URL; service: string | undefined; scopes: string[] } | null = null;
  private token: Token | null = null;
  private pending: Promise<void> | null = null;
  /** Bumped whenever the credentials change, so concurrent 401s refresh once. */
  generation = 0;

  constructor(
    private readonly transport: HttpTransport,
    readonly registry: string,
    readonly creds: Credentials | null,
    /** The scopes this client needs, e.g. `repository:debian:pull`. */
    readonly scopes: string[],
  ) {}

  /** The Authorization header to send now (a nearly expired token is fetched again first). */
  async header(signal?: AbortSignal): Promise<string | undefined> {
    if (this.bearer && this.token && Date.now() >= this.token.expiresAt) await this.refresh(this.generation, signal);
    if (this.token) return this.token.header;
    if (this.basic && this.creds?.username !== undefined) {
      return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password ?? ""}`).toString("base64")}`;
    }
    return undefined;
  }

  /**
   * A request sent with credentials of `generation` got a 401 carrying
   * `wwwAuthenticate`. Returns true when new credentials are ready (repeat
   * the request), false when there is nothing more to try.
   */
  async challenged(wwwAuthenticate: string | string[] | undefined, generation: number, signal?: AbortSignal): Promise<boolean> {
    if (generation !== this.generation) return true; // someone else already got new credentials
    const cs = parseChallenges(wwwAuthenticate);
    const bearer = cs.find((c) => c.scheme === "bearer");
    const basic = cs.find((c) => c.scheme === "basic");
    if (bearer?.params.realm) {
      let realm: URL;
      try {
        realm = new URL(bearer.params.realm);
      } catch {
        throw PfsError.format(`${this.registry} WWW-Authenticate`, `bad token realm ${JSON.stringify(bearer.params.realm)}`);
      }
      const scopes = new Set(this.scopes);
      for (const s of (bearer.params.scope ?? "").split(" ")) if (s) scopes.add(s);
      this.bearer = { realm, service: bearer.params.service, scopes: [...scopes] };
      await this.refresh(generation, signal);
      return true;
    }
    if (basic) {
      if (this.basic || this.creds?.username === undefined) return false;
      this.basic = true;
      this.generation++;
      return true;
    }
    return false;
  }

  private refresh(generation: number, signal?: AbortSignal): Promise<void> {
    if (generation !== this.generation) return Promise.resolve();
    if (!this.pending) {
      this.pending = this.fetchToken(signal).finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  private async fetchToken(signal?: AbortSignal): Promise<void> {
    const b = this.bearer!;
    if (this.creds?.registryToken) {
      this.token = { header: `Bearer ${this.creds.registryToken}`, expiresAt: Number.POSITIVE_INFINITY };
      this.generation++;
      return;
    }
    const url = new URL(b.realm);
    const headers: Record<string, string> = { accept: "application/json" };
    let res;
    if (this.creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: this.creds.identityToken, client_id: "puzzlefs" });
      if (b.service) form.set("service", b.service);
      form.set("scope", b.scopes.join(" "));
      headers["content-type"] = "application/x-www-form-urlencoded";
      res = await this.transport.request(url, { method: "POST", headers, body: new TextEncoder().encode(form.toString()), maxBody: MAX_TOKEN_RESPONSE, signal });
    } else {
      if (b.service) url.searchParams.set("service", b.service);
      for (const s of b.scopes) url.searchParams.append("scope", s);
      if (this.creds?.username !== undefined) {
        headers.authorization = `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password ?? ""}`).toString("base64")}`;
      }
      res = await this.transport.request(url, { method: "GET", headers, maxBody: MAX_TOKEN_RESPONSE, signal });
    }
    const what = `token for ${b.scopes.join(" ")} from ${url.origin}${url.pathname}`;
    if (res.status === 401 || res.status === 403) throw authError(this.registry, what, `token service answered ${res.status}`, this.creds);
    if (res.status !== 200) throw new PfsError(ErrorCode.IO, `${what}: token service answered HTTP ${res.status}`, { data: { what, status: res.status } });
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(Buffer.from(res.body).toString("utf8"));
    } catch {
      throw PfsError.format(what, "the token response is not JSON");
    }
    const tok = typeof body.token === "string" && body.token ? body.token : typeof body.access_token === "string" ? body.access_token : "";
    if (!tok) throw PfsError.format(what, "the token response has no token");
    // Token spec: expires_in defaults to 60 s. Refresh 10 % (at most 30 s) early.
    const ttl = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
    this.token = { header: `Bearer ${tok}`, expiresAt: Date.now() + ttl * 1000 - Math.min(30_000, ttl * 100) };
    this.generation++;
    log.oci("token for %s valid %d s", b.scopes.join(" "), ttl);
  }
}
