/**
 * The OCI distribution API for one repository (distribution-spec v1.1
 * "Pull" and "Push"): manifest GET/HEAD/PUT, blob GET/HEAD, blob upload
 * (POST then PUT with `digest`: distribution 2.8 ignores a monolithic
 * single POST), tag list. Around every request: the Authenticator (one
 * retry after a 401), a Limiter slot (bounded concurrency, foreground before
 * prefetch), and retries with jittered exponential backoff for network
 * failures, 429 and 5xx until a deadline, after which the operation fails
 * with an IO PfsError naming what it was doing.
 *
 * Blob GETs verify sha256 before returning; a body that breaks off is
 * resumed with `Range` (distribution answers 206 with `Content-Range`).
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { sha256Hex } from "../digest.ts";
import { MediaType } from "../manifest.ts";
import { Authenticator, authError, type Credentials } from "./auth.ts";
import { HttpTransport, TransportError, isTlsProtocolError, isTlsTrustError, type HttpResponse, type RequestInit } from "./http.ts";
import { Limiter, type Priority } from "./limiter.ts";
import { formatRemoteRef, type RemoteRef } from "./ref.ts";

export interface RegistryClientOptions {
  credentials?: Credentials | null;
  /** PEM CA added to the default roots. */
  ca?: string | Uint8Array;
  /** Speak plain http to this registry (the caller checked it may). */
  plainHttp?: boolean;
  /** Plain http allowed for redirect targets and token realms (default: loopback only). */
  allowHttp?: (url: URL) => boolean;
  /** Concurrent requests to the registry. Default 8. */
  concurrency?: number;
  /** One operation, retries included, fails after this long. Default 30 s. */
  deadlineMs?: number;
  /** One request with no socket activity for this long is retried. Default 10 s. */
  idleTimeoutMs?: number;
  /** Ask for push rights too (token scope `pull,push`). */
  push?: boolean;
}

export const MANIFEST_ACCEPT = [MediaType.MANIFEST, MediaType.INDEX].join(", ");
/** What registries accept as a manifest body (distribution and zot: 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20;

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRY_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNABORTED", "ENETDOWN", "EHOSTDOWN"]);

/** `{"errors":[{"code":"BLOB_UNKNOWN","message":"…"}]}` → `BLOB_UNKNOWN: …` (or the raw text). */
export function registryErrorText(res: HttpResponse): string {
  const text = Buffer.from(res.body.subarray(0, 4096)).toString("utf8").trim();
  try {
    const j = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (Array.isArray(j.errors) && j.errors.length) return j.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
  } catch {
    // not JSON
  }
  return `HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ""}`;
}

/** Thrown inside an attempt to ask for another one (the deadline permitting). */
/** An operation's time budget (see withRetries). */
export class Deadline {
  private end: number | null = null;
  private readonly cap: number;

  constructor(readonly ms: number) {
    this.cap = Date.now() + 4 * ms;
  }

  /** Start the clock (idempotent). */
  start(): void {
    if (this.end === null) this.end = Math.min(this.cap, Date.now() + this.ms);
  }

  get left(): number {
    return Math.min(this.end ?? Number.POSITIVE_INFINITY, this.cap) - Date.now();
  }

  get expired(): boolean {
    return this.left <= 0;
  }

  /** Aborts when the time left runs out. */
  signal(): AbortSignal {
    return AbortSignal.timeout(Math.max(1, this.left));
  }
}

class Retry extends Error {
  constructor(
    message: string,
    readonly afterMs?: number,
  ) {
    super(message);
  }
}

export class RegistryClient {
  readonly transport: HttpTransport;
  readonly auth: Authenticator;
  readonly limiter: Limiter;
  readonly base: URL;
  readonly name: string;
  readonly deadlineMs: number;
  /** Requests sent and response body bytes received (tests and `info`). */
  readonly stats = { requests: 0, bytes: 0, retries: 0 };

  constructor(
    readonly ref: RemoteRef,
    opts: RegistryClientOptions = {},
  ) {
    this.base = new URL(`${opts.plainHttp ? "http" : "https"}://${ref.host}/v2/`);
    this.name = formatRemoteRef({ ...ref, tag: undefined, digest: undefined });
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    const allowHttp = opts.allowHttp ?? ((u: URL) => /^(localhost|127(\.\d+){3}|\[::1\])$/.test(u.hostname));
    this.transport = new HttpTransport({
      ca: opts.ca,
      allowHttp: (u) => (opts.plainHttp === true && u.host === this.base.host) || allowHttp(u),
      maxSockets: opts.concurrency ?? 8,
      idleTimeoutMs: opts.idleTimeoutMs ?? 10_000,
    });
    this.transport.checkScheme(this.base);
    const scope = `repository:${ref.repo}:${opts.push ? "pull,push" : "pull"}`;
    this.auth = new Authenticator(this.transport, ref.host, opts.credentials ?? null, [scope]);
    this.limiter = new Limiter(opts.concurrency ?? 8);
  }

  close(): void {
    this.transport.close();
  }

  url(path: string): URL {
    return new URL(`${this.ref.repo}/${path}`, this.base);
  }

  /**
   * One request holding a limiter slot; after a 401 the credentials are
   * renewed and it is sent once more. With a Deadline, its clock starts when
   * the slot is granted and the request is abandoned when it runs out.
   */
  async call(url: URL, init: RequestInit, priority: Priority = "high", deadline?: Deadline): Promise<HttpResponse> {
    return this.limiter.run(async () => {
      deadline?.start();
      if (deadline?.expired) throw new TransportError(`${this.ref.host}: deadline passed while queued`, "ABORT_ERR");
      const signal = deadline ? deadline.signal() : init.signal;
      for (let round = 0; ; round++) {
        const gen = this.auth.generation;
        const authorization = await this.auth.header(signal);
        const headers = { ...(init.headers ?? {}), ...(authorization ? { authorization } : {}) };
        this.stats.requests++;
        const res = await this.transport.request(url, { ...init, headers, signal });
        this.stats.bytes += res.body.length;
        if (res.status !== 401 || round > 0) return res;
        if (!(await this.auth.challenged(res.headers["www-authenticate"], gen, signal))) return res;
      }
    }, priority);
  }

  /**
   * Run `attempt` until it returns, retrying `Retry`s and transient network
   * failures with backoff (100 ms doubling to 2 s, jittered) until the
   * deadline: `deadlineMs` from when the operation first holds a limiter
   * slot (time queued behind other fetches does not count, so a busy but
   * healthy registry does not fail reads), and never more than 4× that from
   * the call.
   */
  async withRetries<T>(what: string, attempt: (deadline: Deadline) => Promise<T>, deadlineMs = this.deadlineMs): Promise<T> {
    const deadline = new Deadline(deadlineMs);
    let last = "";
    for (let n = 0; ; n++) {
      if (deadline.expired) break;
      let wait: number | undefined;
      try {
        return await attempt(deadline);
      } catch (e) {
        if (e instanceof Retry) {
          last = e.message;
          wait = e.afterMs;
        } else if (e instanceof TransportError) {
          if (isTlsTrustError(e.code)) {
            throw new PfsError(ErrorCode.IO, `${what}: TLS certificate of ${this.ref.host} not trusted (${e.code})`, {
              hint: "give the registry's CA certificate with --registry-ca FILE",
              data: { what, errno: e.code },
            });
          }
          if (isTlsProtocolError(e.code)) {
            throw new PfsError(ErrorCode.IO, `${what}: TLS handshake with ${this.ref.host} failed (${e.code})`, {
              hint: "if the registry speaks plain HTTP, pass --insecure-registry (loopback) or --insecure-registry HOST:PORT",
              data: { what, errno: e.code },
            });
          }
          if (!RETRY_CODES.has(e.code) && e.code !== "ABORT_ERR") throw PfsError.io(what, e);
          if (e.code !== "ABORT_ERR" || !last) last = `${e.code}: ${e.message}`;
        } else {
          throw e;
        }
      }
      this.stats.retries++;
      const backoff = Math.min(2000, 100 * 2 ** Math.min(n, 5)) * (0.5 + Math.random() / 2);
      const delay = Math.min(deadline.left, Math.max(wait ?? 0, backoff));
      log.oci("%s: retry %d in %d ms (%s)", what, n + 1, Math.round(delay), last);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    }
    throw new PfsError(ErrorCode.IO, `${what}: ${this.ref.host} did not answer within ${(deadlineMs / 1000).toFixed(1)} s (last: ${last || "timeout"})`, {
      hint: "check that the registry is up and reachable; reads work again as soon as it is",
      data: { what, errno: "ETIMEDOUT" },
    });
  }

  /** Common status handling: retryable statuses become Retry; 401/403 an access error. */
  private check(res: HttpResponse, what: string): void {
    if (RETRY_STATUS.has(res.status)) {
      const ra = Number(res.headers["retry-after"]);
      throw new Retry(`${what}: ${registryErrorText(res)}`, Number.isFinite(ra) ? ra * 1000 : undefined);
    }
    if (res.status === 401 || res.status === 403) throw authError(this.ref.host, what, registryErrorText(res), this.auth.creds);
  }

  /** The manifest for a tag or `sha256:<hex>`; `digest` is the Docker-Content-Digest header when sent. */
  async getManifest(reference: string): Promise<{ bytes: Uint8Array; contentType: string | undefined; digest: string | undefined }> {
    const what = `manifest ${this.name}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`;
    return this.withRetries(what, async (d) => {
      const res = await this.call(this.url(`manifests/${reference}`), { method: "GET", headers: { accept: MANIFEST_ACCEPT }, maxBody: MAX_MANIFEST_BYTES }, "high", d);
      this.check(res, what);
      if (res.status === 404) {
        throw PfsError.notFound(what, `the registry has no such ${reference.startsWith("sha256:") ? "manifest" : "tag"} (${registryErrorText(res)}); list tags with \`puzzlefs info ${this.name}\``);
      }
      if (res.status !== 200) throw new PfsError(ErrorCode.IO, `${what}: ${registryErrorText(res)}`, { data: { what, status: res.status } });
      const dcd = res.headers["docker-content-digest"];
      return { bytes: res.body, contentType: res.headers["content-type"], digest: typeof dcd === "string" ? dcd : undefined };
    });
  }

  /**
   * A whole blob, sha256-verified. A body that breaks off is resumed with a
   * Range request; bytes that do not hash to `hex` are fetched once more, then
   * refused (DIGEST), so nothing wrong ever leaves here.
   */
  async getBlob(hex: string, opts: { what?: string; expectedSize?: number; maxSize: number; priority?: Priority }): Promise<Uint8Array> {
    const what = opts.what ?? `blob sha256:${hex}`;
    if (opts.expectedSize !== undefined && opts.expectedSize > opts.maxSize) throw PfsError.limit(what, `${opts.expectedSize} bytes > ${opts.maxSize}`);
    const max = opts.expectedSize ?? opts.maxSize;
    let have: Uint8Array = new Uint8Array(0);
    let mismatches = 0;
    return this.withRetries(`${what} from ${this.name}`, async (d) => {
      const headers: Record<string, string> = {};
      if (have.length > 0) headers.range = `bytes=${have.length}-`;
      let res: HttpResponse;
      try {
        res = await this.call(this.url(`blobs/sha256:${hex}`), { method: "GET", headers, maxBody: max - have.length }, opts.priority, d);
      } catch (e) {
        // Keep what arrived; the next attempt asks for the rest if the server takes ranges.
        if (e instanceof TransportError && e.partial && e.partial.headers["accept-ranges"] === "bytes") {
          const got = e.partial.bytes;
          if (e.partial.status === 200) have = got;
          else if (e.partial.status === 206) have = concat(have, got);
        }
        throw e;
      }
      this.check(res, what);
      if (res.status === 404) {
        throw new PfsError(ErrorCode.NOT_FOUND, `${what}: not found in ${this.name} (${registryErrorText(res)})`, {
          hint: "the registry no longer has this blob (garbage-collected after its tag moved?); push the image again or serve a digest the registry still holds",
          data: { what, digest: `sha256:${hex}`, status: 404 },
        });
      }
      if (res.status === 416 && have.length > 0) {
        have = new Uint8Array(0);
        throw new Retry(`${what}: range refused, starting over`);
      }
      let bytes: Uint8Array;
      if (res.status === 206 && have.length > 0) {
        const cr = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers["content-range"] ?? ""));
        if (!cr || Number(cr[1]) !== have.length) {
          have = new Uint8Array(0);
          throw new Retry(`${what}: unexpected Content-Range ${String(res.headers["content-range"])}`);
        }
        bytes = concat(have, res.body);
      } else if (res.status === 200) {
        bytes = res.body;
      } else {
        throw new PfsError(ErrorCode.IO, `${what}: ${registryErrorText(res)}`, { data: { what, status: res.status } });
      }
      have = new Uint8Array(0);
      if (opts.expectedSize !== undefined && bytes.length !== opts.expectedSize) {
        throw PfsError.format(`${what} from ${this.name}`, "size differs from its descriptor", { expected: opts.expectedSize, got: bytes.length });
      }
      const got = sha256Hex(bytes);
      if (got !== hex) {
        log.oci("%s: sha256 mismatch from %s: got %s", what, this.name, got);
        if (++mismatches < 2) throw new Retry(`${what}: sha256 mismatch (got ${got})`);
        throw new PfsError(ErrorCode.DIGEST, `${what} from ${this.name}: sha256 mismatch: expected ${hex}, got ${got}`, {
          data: { what, expected: hex, got },
          hint: "the registry, or something between it and us, served other bytes; nothing was cached",
        });
      }
      return bytes;
    });
  }

  /** The blob's size if the registry has it in this repository, else null. */
  async headBlob(hex: string): Promise<number | null> {
    const what = `blob sha256:${hex} in ${this.name}`;
    return this.withRetries(`HEAD ${what}`, async (d) => {
      const res = await this.call(this.url(`blobs/sha256:${hex}`), { method: "HEAD", maxBody: 0 }, "high", d);
      this.check(res, what);
      if (res.status === 404) return null;
      if (res.status !== 200) throw new PfsError(ErrorCode.IO, `HEAD ${what}: HTTP ${res.status}`, { data: { what, status: res.status } });
      return Number(res.headers["content-length"] ?? -1);
    });
  }

  /** Upload one blob: POST to open an upload session, PUT the bytes with `?digest=`. */
  async uploadBlob(hex: string, bytes: Uint8Array, priority: Priority = "high"): Promise<void> {
    const what = `uploading blob sha256:${hex} to ${this.name}`;
    await this.withRetries(
      what,
      async (d) => {
        const post = await this.call(this.url("blobs/uploads/"), { method: "POST", body: new Uint8Array(0), maxBody: 1 << 16 }, priority, d);
        this.check(post, what);
        const loc = post.headers.location;
        if (post.status !== 202 || !loc) throw new PfsError(ErrorCode.IO, `${what}: starting the upload: ${registryErrorText(post)}`, { data: { what, status: post.status } });
        const target = new URL(loc, post.url);
        target.searchParams.set("digest", `sha256:${hex}`);
        const put = await this.call(target, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: bytes, maxBody: 1 << 16 }, priority, d);
        this.check(put, what);
        if (put.status !== 201) throw new PfsError(ErrorCode.IO, `${what}: ${registryErrorText(put)}`, { data: { what, status: put.status } });
      },
      Math.max(this.deadlineMs, 120_000),
    );
  }

  /** PUT a manifest under a tag (or digest); returns the registry's Docker-Content-Digest when sent. */
  async putManifest(reference: string, bytes: Uint8Array, mediaType: string = MediaType.MANIFEST): Promise<string | undefined> {
    if (bytes.length > MAX_MANIFEST_BYTES) throw PfsError.limit(`manifest for ${this.name}:${reference}`, `${bytes.length} bytes > ${MAX_MANIFEST_BYTES} registries accept`);
    const what = `pushing manifest ${this.name}:${reference}`;
    return this.withRetries(what, async (d) => {
      const res = await this.call(this.url(`manifests/${reference}`), { method: "PUT", headers: { "content-type": mediaType }, body: bytes, maxBody: 1 << 16 }, "high", d);
      this.check(res, what);
      if (res.status !== 201 && res.status !== 200) throw new PfsError(ErrorCode.IO, `${what}: ${registryErrorText(res)}`, { data: { what, status: res.status } });
      const dcd = res.headers["docker-content-digest"];
      return typeof dcd === "string" ? dcd : undefined;
    });
  }

  /** All tags of the repository (following `Link: <…>; rel="next"` pages). */
  async listTags(): Promise<string[]> {
    const what = `tags of ${this.name}`;
    const out: string[] = [];
    let url: URL | null = this.url("tags/list");
    for (let page = 0; url && page < 1000; page++) {
      const u: URL = url;
      const res = await this.withRetries(what, async (d) => {
        const r = await this.call(u, { method: "GET", headers: { accept: "application/json" }, maxBody: 16 << 20 }, "high", d);
        this.check(r, what);
        if (r.status === 404) throw PfsError.notFound(`repository ${this.name}`, registryErrorText(r));
        if (r.status !== 200) throw new PfsError(ErrorCode.IO, `${what}: ${registryErrorText(r)}`, { data: { what, status: r.status } });
        return r;
      });
      let j: { tags?: unknown };
      try {
        j = JSON.parse(Buffer.from(res.body).toString("utf8"));
      } catch {
        throw PfsError.format(what, "the tag list is not JSON");
      }
      if (Array.isArray(j.tags)) for (const t of j.tags) if (typeof t === "string") out.push(t);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ""));
      url = link ? new URL(link[1]!, res.url) : null;
    }
    return out;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
