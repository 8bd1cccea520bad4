/**
 * The HTTP transport under the registry client, on `node:http`/`node:https`
 * (no dependency: a per-client `https.Agent` carries the custom CA, which
 * Node 20's built-in fetch cannot take without the undici package). It owns
 * what every request needs and nothing about the distribution API:
 *
 *  - keep-alive agents with a socket cap, an idle timeout per request and an
 *    AbortSignal for the caller's deadline;
 *  - response bodies buffered up to a cap (LIMIT beyond it, before reading
 *    when Content-Length already says so);
 *  - redirects for GET/HEAD (registries send blob GETs to a CDN with 307),
 *    keeping `Range` and dropping `Authorization` when the origin changes, as
 *    fetch does; never from https down to plain http unless that host may use
 *    plain http;
 *  - plain http only where `allowHttp` says so (the CLI: loopback with
 *    `--insecure-registry`, or the host it names).
 *
 * Failures are `TransportError`s carrying the errno-style code and, when the
 * body broke off, the bytes received so far (the client resumes with Range).
 */
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";

export interface TransportOptions {
  /** PEM CA certificate(s) trusted in addition to Node's default roots. */
  ca?: string | Uint8Array;
  /** Whether a plain-http URL may be used (the registry's, a redirect's or a token realm's). */
  allowHttp?: (url: URL) => boolean;
  /** Sockets per origin. Default 16. */
  maxSockets?: number;
  /** A request with no socket activity for this long fails with ETIMEDOUT. Default 15 s. */
  idleTimeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Uint8Array;
  /** The URL that answered (after redirects). */
  url: URL;
}

export interface RequestInit {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Largest response body accepted. */
  maxBody: number;
  signal?: AbortSignal;
  /** Redirects followed (GET/HEAD only). Default 5. */
  maxRedirects?: number;
}

/** A request that failed below HTTP: connection, TLS, timeout, or a body that broke off. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** Body bytes received before the failure (status 200/206 only). */
    readonly partial: { status: number; headers: http.IncomingHttpHeaders; bytes: Uint8Array } | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TransportError";
  }
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);
const TLS_TRUST = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** A TLS failure the user fixes with --registry-ca (or the server's certificate). */
export function isTlsTrustError(code: string): boolean {
  return TLS_TRUST.has(code);
}

/** TLS spoken to a plain-http server (or the other way round). */
export function isTlsProtocolError(code: string): boolean {
  return code === "EPROTO" || code.startsWith("ERR_SSL_");
}

export class HttpTransport {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly idleTimeoutMs: number;
  private readonly allowHttp: (url: URL) => boolean;

  constructor(opts: TransportOptions = {}) {
    const maxSockets = opts.maxSockets ?? 16;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 15_000;
    this.allowHttp = opts.allowHttp ?? (() => false);
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    // connect.ca replaces Node's roots, so keep them: a redirect may lead to a public CDN.
    const ca = opts.ca === undefined ? undefined : [...tls.rootCertificates, Buffer.from(opts.ca).toString("utf8")];
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, ...(ca ? { ca } : {}) });
  }

  /** Drop idle keep-alive sockets (the agents stay usable). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  checkScheme(url: URL): void {
    if (url.protocol === "https:") return;
    if (url.protocol === "http:" && this.allowHttp(url)) return;
    if (url.protocol === "http:") {
      throw new PfsError(ErrorCode.USAGE, `refusing plain HTTP to ${url.host}: only loopback registries, or the one --insecure-registry names, may use it`, {
        hint: `use https, or pass --insecure-registry ${url.host} if this registry really has no TLS`,
        data: { what: url.host },
      });
    }
    throw new PfsError(ErrorCode.USAGE, `unsupported URL scheme ${url.protocol} (${url.href})`);
  }

  /** One request, following redirects for GET/HEAD. HTTP error statuses are returned, not thrown. */
  async request(url: URL, init: RequestInit): Promise<HttpResponse> {
    let headers = { "accept-encoding": "identity", ...(init.headers ?? {}) };
    let cur = url;
    const max = init.method === "GET" || init.method === "HEAD" ? (init.maxRedirects ?? 5) : 0;
    for (let hop = 0; ; hop++) {
      this.checkScheme(cur);
      const res = await this.once(cur, init, headers, hop < max);
      if (!REDIRECT.has(res.status) || hop >= max) return res;
      const loc = res.headers.location;
      if (!loc) return res;
      const next = new URL(loc, cur);
      if (cur.protocol === "https:" && next.protocol === "http:" && !this.allowHttp(next)) {
        throw new PfsError(ErrorCode.IO, `${cur.host} redirected ${cur.pathname} from https to plain http (${next.host}); refusing the downgrade`, {
          data: { what: cur.href },
        });
      }
      if (next.origin !== cur.origin) {
        // Credentials are for the registry, never for where it sends us (fetch and curl -L do the same).
        const { authorization: _, ...rest } = headers as Record<string, string>;
        headers = rest as typeof headers;
      }
      log.oci("redirect %d %s -> %s", res.status, cur.href, next.href);
      cur = next;
    }
  }

  private once(url: URL, init: RequestInit, headers: Record<string, string>, mayRedirect: boolean): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const fail = (e: TransportError | PfsError) => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(e);
      };
      const agent = url.protocol === "https:" ? this.httpsAgent : this.httpAgent;
      const mod = url.protocol === "https:" ? https : http;
      const h: Record<string, string> = { ...headers };
      if (init.body !== undefined) h["content-length"] = String(init.body.length);
      const req = mod.request(url, { method: init.method, headers: h, agent, signal: init.signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (mayRedirect && REDIRECT.has(status)) {
          res.resume();
          settled = true;
          resolve({ status, headers: res.headers, body: new Uint8Array(0), url });
          return;
        }
        const declared = Number(res.headers["content-length"]);
        if (init.method !== "HEAD" && Number.isFinite(declared) && declared > init.maxBody) {
          fail(PfsError.limit(`${init.method} ${url.href}`, `response of ${declared} bytes > ${init.maxBody}`));
          return;
        }
        const parts: Buffer[] = [];
        let total = 0;
        const partial = () => (status === 200 || status === 206 ? { status, headers: res.headers, bytes: new Uint8Array(Buffer.concat(parts)) } : null);
        res.on("data", (c: Buffer) => {
          total += c.length;
          if (total > init.maxBody) {
            fail(PfsError.limit(`${init.method} ${url.href}`, `response body > ${init.maxBody} bytes`));
            return;
          }
          parts.push(c);
        });
        res.on("error", (e: NodeJS.ErrnoException) => fail(new TransportError(`${url.host}: ${e.message}`, e.code ?? "ECONNRESET", partial(), { cause: e })));
        res.on("end", () => {
          if (settled) return;
          if (!res.complete) {
            fail(new TransportError(`${url.host}: connection closed mid-body`, "ECONNRESET", partial()));
            return;
          }
          settled = true;
          resolve({ status, headers: res.headers, body: new Uint8Array(Buffer.concat(parts, total)), url });
        });
      });
      req.setTimeout(this.idleTimeoutMs, () => fail(new TransportError(`${url.host}: no answer for ${this.idleTimeoutMs} ms`, "ETIMEDOUT")));
      req.on("error", (e: NodeJS.ErrnoException) => {
        const code = e.name === "AbortError" ? "ABORT_ERR" : (e.code ?? "EIO");
        fail(new TransportError(`${url.host}: ${e.message}`, code, null, { cause: e }));
      });
      req.end(init.body === undefined ? undefined : Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength));
    });
  }
}
