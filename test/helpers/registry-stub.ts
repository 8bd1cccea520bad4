/**
 * TEST-ONLY: a small OCI distribution registry in process, on 127.0.0.1
 * port 0, that behaves like Debian's docker-registry 2.8 where our client
 * depends on it (facts from shared/integration/registry-notes.md):
 * manifests need an `Accept` listing the OCI type (404 otherwise), blobs are
 * repo-scoped and take single `Range`s (206 + Content-Range), uploads are
 * POST then PUT `?digest=` (a body on the POST is ignored), a manifest PUT
 * needs the OCI Content-Type, ≤ 4 MiB, and its blobs present; basic auth, or
 * bearer tokens from `/token` with per-repository scopes and expiry.
 *
 * Fault hooks let tests corrupt, cut, delay, fail or redirect responses.
 * The integration suite checks the same client against the real registry.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { join } from "node:path";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export type StubAuth = { kind: "basic"; users: Record<string, string> } | { kind: "bearer"; users: Record<string, string>; ttlSeconds?: number };

export interface StubRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status?: number;
}

/** Returning a value from a hook replaces the normal answer: a status + body, "drop" (destroy the socket), or "pass". */
export type StubHook = (req: StubRequest) => "pass" | "drop" | { status: number; headers?: Record<string, string>; body?: string | Uint8Array } | Promise<"pass" | "drop" | { status: number; headers?: Record<string, string>; body?: string | Uint8Array }>;

export interface StubRegistry {
  host: string;
  origin: string;
  requests: StubRequest[];
  blobs: Map<string, Uint8Array>;
  hook: StubHook | null;
  /** Rewrite a blob body before it is sent (corruption tests). */
  blobBody: ((hex: string, bytes: Uint8Array) => Uint8Array) | null;
  /** Send only this many bytes of a blob body, then destroy the connection (once per entry). */
  cutBlobs: Map<string, number>;
  /** Answer blob GETs with 307 to this origin's `/cdn/<hex>`. */
  redirectBlobsTo: string | null;
  tokensIssued: number;
  /** Bytes of blob bodies sent. */
  blobBytesSent: number;
  addBlob(repo: string, bytes: Uint8Array): string;
  hasBlob(repo: string, hex: string): boolean;
  deleteBlob(hex: string): void;
  putManifest(repo: string, tag: string, bytes: Uint8Array): string;
  /** Copy every blob of an OCI layout into `repo` and tag its manifests as in index.json. */
  addLayout(repo: string, dir: string): void;
  manifest(repo: string, ref: string): Uint8Array | undefined;
  stop(): Promise<void>;
}

export async function startStubRegistry(opts: { auth?: StubAuth; tls?: { cert: string | Buffer; key: string | Buffer } } = {}): Promise<StubRegistry> {
  const repoBlobs = new Map<string, Set<string>>();
  const manifests = new Map<string, Uint8Array>();
  const uploads = new Map<string, string>();
  const tokens = new Map<string, { scopes: string[]; exp: number }>();
  const scheme = opts.tls ? "https" : "http";

  const stub: StubRegistry = {
    host: "",
    origin: "",
    requests: [],
    blobs: new Map(),
    hook: null,
    blobBody: null,
    cutBlobs: new Map(),
    redirectBlobsTo: null,
    tokensIssued: 0,
    blobBytesSent: 0,
    addBlob(repo, bytes) {
      const hex = sha(bytes);
      stub.blobs.set(hex, bytes);
      if (!repoBlobs.has(repo)) repoBlobs.set(repo, new Set());
      repoBlobs.get(repo)!.add(hex);
      return hex;
    },
    hasBlob: (repo, hex) => !!repoBlobs.get(repo)?.has(hex) && stub.blobs.has(hex),
    deleteBlob(hex) {
      stub.blobs.delete(hex);
    },
    putManifest(repo, tag, bytes) {
      const hex = sha(bytes);
      manifests.set(`${repo}@sha256:${hex}`, bytes);
      manifests.set(`${repo}:${tag}`, bytes);
      return hex;
    },
    addLayout(repo, dir) {
      const bdir = join(dir, "blobs", "sha256");
      for (const n of readdirSync(bdir)) stub.addBlob(repo, readFileSync(join(bdir, n)));
      const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
      for (const d of index.manifests) {
        const tag = d.annotations?.["org.opencontainers.image.ref.name"];
        if (tag) stub.putManifest(repo, tag, stub.blobs.get(d.digest.slice(7))!);
      }
    },
    manifest: (repo, ref) => manifests.get(ref.startsWith("sha256:") ? `${repo}@${ref}` : `${repo}:${ref}`),
    stop: async () => {},
  };

  const send = (res: http.ServerResponse, status: number, body: string | Uint8Array = "", headers: Record<string, string> = {}) => {
    const b = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
    res.writeHead(status, { "content-length": String(b.length), ...headers });
    res.end(b);
  };
  const err = (res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    send(res, status, JSON.stringify({ errors: [{ code, message }] }), { "content-type": "application/json", ...headers });

  /** null when allowed; else the 401 answer was sent. */
  const authorize = (req: http.IncomingMessage, res: http.ServerResponse, repo: string, push: boolean): boolean => {
    const a = opts.auth;
    if (!a) return true;
    const h = req.headers.authorization ?? "";
    if (a.kind === "basic") {
      const m = /^Basic (.+)$/.exec(h);
      const [u, p] = m ? Buffer.from(m[1]!, "base64").toString().split(":") : [];
      if (u !== undefined && a.users[u] === p) return true;
      err(res, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="stub"' });
      return false;
    }
    const need = `repository:${repo}:${push ? "pull,push" : "pull"}`;
    const t = /^Bearer (.+)$/.exec(h);
    const tok = t ? tokens.get(t[1]!) : undefined;
    const granted = tok && tok.exp > Date.now() && tok.scopes.some((s) => {
      const [type, name, actions] = s.split(":");
      return type === "repository" && name === repo && (actions ?? "").split(",").includes(push ? "push" : "pull");
    });
    if (granted) return true;
    const extra = tok && tok.exp > Date.now() ? ',error="insufficient_scope"' : "";
    err(res, 401, "UNAUTHORIZED", "authentication required", {
      "www-authenticate": `Bearer realm="${stub.origin}/token",service="stub-registry",scope="${need}"${extra}`,
    });
    return false;
  };

  const token = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    const a = opts.auth;
    if (a?.kind !== "bearer") return send(res, 404);
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
    const [u, p] = m ? Buffer.from(m[1]!, "base64").toString().split(":") : [];
    if (m && (u === undefined || a.users[u] !== p)) return send(res, 401);
    const scopes = m ? url.searchParams.getAll("scope") : [];
    const ttl = a.ttlSeconds ?? 300;
    const value = `tok-${++stub.tokensIssued}-${randomUUID()}`;
    tokens.set(value, { scopes, exp: Date.now() + ttl * 1000 });
    send(res, 200, JSON.stringify({ token: value, expires_in: ttl }), { "content-type": "application/json" });
  };

  const sendBlob = (req: http.IncomingMessage, res: http.ServerResponse, hex: string) => {
    let bytes = stub.blobs.get(hex)!;
    const head = { "accept-ranges": "bytes", "docker-content-digest": `sha256:${hex}`, etag: `"sha256:${hex}"`, "content-type": "application/octet-stream" };
    if (req.method === "HEAD") {
      res.writeHead(200, { ...head, "content-length": String(bytes.length) });
      return res.end();
    }
    if (stub.blobBody) bytes = stub.blobBody(hex, bytes);
    let status = 200;
    let start = 0;
    let end = bytes.length;
    const r = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ""));
    const extra: Record<string, string> = {};
    if (r) {
      start = Number(r[1]);
      end = r[2] ? Math.min(bytes.length, Number(r[2]) + 1) : bytes.length;
      if (start >= bytes.length) return send(res, 416, "", { "content-range": `bytes */${bytes.length}` });
      status = 206;
      extra["content-range"] = `bytes ${start}-${end - 1}/${bytes.length}`;
    }
    const body = bytes.subarray(start, end);
    const cut = stub.cutBlobs.get(hex);
    if (cut !== undefined) {
      stub.cutBlobs.delete(hex);
      res.writeHead(status, { ...head, ...extra, "content-length": String(body.length) });
      res.write(Buffer.from(body.subarray(0, cut)), () => res.destroy());
      stub.blobBytesSent += Math.min(cut, body.length);
      return;
    }
    stub.blobBytesSent += body.length;
    send(res, status, body, { ...head, ...extra });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? "/", stub.origin);
    const rec: StubRequest = { method: req.method ?? "", path: url.pathname + url.search, headers: req.headers };
    stub.requests.push(rec);
    const hooked = stub.hook ? await stub.hook(rec) : "pass";
    if (hooked === "drop") return req.socket.destroy();
    if (hooked !== "pass") return send(res, hooked.status, hooked.body ?? "", hooked.headers);
    if (url.pathname === "/token") return token(req, res, url);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return stub.blobs.has(cdn[1]!) ? sendBlob(req, res, cdn[1]!) : send(res, 404);
    if (url.pathname === "/v2/") return authorize(req, res, "", false) ? send(res, 200, "{}") : undefined;
    const m = /^\/v2\/(.+?)\/(manifests|blobs|tags)\/(.*)$/.exec(url.pathname);
    if (!m) return err(res, 404, "NOT_FOUND", "no route");
    const [, repo, kind, rest] = m as unknown as [string, string, string, string];
    const push = !["GET", "HEAD"].includes(req.method ?? "");
    if (!authorize(req, res, repo, push)) return;
    if (kind === "tags") {
      const tags = [...manifests.keys()].filter((k) => k.startsWith(`${repo}:`)).map((k) => k.slice(repo.length + 1));
      return send(res, 200, JSON.stringify({ name: repo, tags }), { "content-type": "application/json" });
    }
    if (kind === "manifests") {
      if (req.method === "PUT") {
        if (req.headers["content-type"] !== OCI_MANIFEST) return err(res, 400, "MANIFEST_INVALID", "unsupported content type");
        if (body.length > 4 << 20) return err(res, 400, "MANIFEST_INVALID", "http: request body too large");
        const j = JSON.parse(body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
        for (const d of [j.config, ...j.layers]) if (!stub.hasBlob(repo, d.digest.slice(7))) return err(res, 400, "MANIFEST_BLOB_UNKNOWN", d.digest);
        const hex = stub.putManifest(repo, rest, body);
        return send(res, 201, "", { "docker-content-digest": `sha256:${hex}`, location: `/v2/${repo}/manifests/sha256:${hex}` });
      }
      const bytes = stub.manifest(repo, rest);
      if (!bytes) return err(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
      if (!String(req.headers.accept ?? "").includes(OCI_MANIFEST)) return err(res, 404, "MANIFEST_UNKNOWN", "OCI manifest found, but accept header does not support OCI manifests");
      const h = { "content-type": OCI_MANIFEST, "docker-content-digest": `sha256:${sha(bytes)}` };
      if (req.method === "HEAD") return res.writeHead(200, { ...h, "content-length": String(bytes.length) }).end();
      return send(res, 200, bytes, h);
    }
    // blobs
    if (rest === "uploads/" && req.method === "POST") {
      const id = randomUUID();
      uploads.set(id, repo);
      return send(res, 202, "", { location: `/v2/${repo}/blobs/uploads/${id}?_state=s${id.slice(0, 4)}`, "docker-upload-uuid": id });
    }
    const up = /^uploads\/([0-9a-f-]+)$/.exec(rest);
    if (up && req.method === "PUT") {
      if (uploads.get(up[1]!) !== repo || url.searchParams.get("_state") === null) return err(res, 404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
      const want = (url.searchParams.get("digest") ?? "").slice(7);
      if (sha(body) !== want) return err(res, 400, "DIGEST_INVALID", "digest mismatch");
      uploads.delete(up[1]!);
      stub.addBlob(repo, new Uint8Array(body));
      return send(res, 201, "", { location: `/v2/${repo}/blobs/sha256:${want}`, "docker-content-digest": `sha256:${want}` });
    }
    const b = /^sha256:([0-9a-f]{64})$/.exec(rest);
    if (!b || !stub.hasBlob(repo, b[1]!)) return err(res, 404, "BLOB_UNKNOWN", "blob unknown to registry");
    if (stub.redirectBlobsTo && req.method === "GET") return send(res, 307, "", { location: `${stub.redirectBlobsTo}/cdn/${b[1]}` });
    return sendBlob(req, res, b[1]!);
  };

  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      handle(req, res, Buffer.concat(parts)).catch((e: unknown) => {
        if (!res.headersSent) send(res, 500, String(e));
      });
    });
  };
  const srv = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, listener) : http.createServer(listener);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  stub.host = `127.0.0.1:${port}`;
  stub.origin = `${scheme}://${stub.host}`;
  stub.stop = () =>
    new Promise((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return stub;
}
