/**
 * Socket-level test helpers: start an NbdServer on 127.0.0.1:0, run real
 * clients asynchronously (the server lives in this process, so a blocking
 * spawnSync would deadlock), and a raw-socket client for byte-level tests.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { type Socket, connect } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { NbdServer, type NbdExport, type ServerOptions } from "../../../src/nbd/server.ts";
import { GREETING, type Reply, ReplyReader, clientFlags } from "./proto.ts";

export interface Running {
  server: NbdServer;
  port: number;
  uri(name?: string): string;
  stop(): Promise<void>;
}

export async function startServer(exports: Record<string, NbdExport>, opts: Partial<ServerOptions> = {}): Promise<Running> {
  const server = new NbdServer({ ...opts, exports: new Map(Object.entries(exports)) });
  await server.listen({ host: "127.0.0.1", port: 0 });
  const addr = server.address();
  if (typeof addr === "string") throw new Error("expected a TCP address");
  const port = addr.port;
  return { server, port, uri: (name = "") => `nbd://127.0.0.1:${port}/${name}`, stop: () => server.close() };
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, LANG: "C" } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const CASES = join(import.meta.dirname, "nbdcases.py");

/** Run a case of nbdcases.py with Debian's python3 (which has the libnbd binding). */
export async function pyCase<T = Record<string, unknown>>(name: string, ...args: (string | number)[]): Promise<T> {
  const r = await run("/usr/bin/python3", [CASES, name, ...args.map(String)]);
  if (r.code !== 0) throw new Error(`nbdcases.py ${name} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A raw TCP client: send bytes, read replies with the naive parser, watch for close. */
export class RawClient {
  readonly reader = new ReplyReader();
  private waiters: (() => void)[] = [];
  closed = false;
  /** The plain socket, or its TLSSocket after startTls(). */
  socket: Socket;
  /** The last socket error (e.g. a TLS alert), if any. */
  error: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: Socket): void {
    socket.on("data", (b) => {
      this.reader.push(b);
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.wake();
    });
  }

  /** Dial 127.0.0.1:port (from `localAddress`, e.g. 127.0.0.2), or a unix socket path. */
  static async connect(where: number | string, opts: { localAddress?: string } = {}): Promise<RawClient> {
    const s = typeof where === "number" ? connect({ host: "127.0.0.1", port: where, localAddress: opts.localAddress }) : connect(where);
    await new Promise<void>((res, rej) => s.once("connect", res).once("error", rej));
    return new RawClient(s);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until `pred` holds (checked on every input), or reject after `ms`. */
  async until<T>(pred: () => T | undefined | false, ms = 10_000, what = "condition"): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(b: Uint8Array): void {
    this.socket.write(b);
  }

  raw(n: number, ms?: number): Promise<Buffer> {
    return this.until(() => this.reader.raw(n), ms, `${n} raw bytes`);
  }

  reply(ms?: number): Promise<Reply> {
    return this.until(() => this.reader.next(), ms, "a reply");
  }

  waitClosed(ms?: number): Promise<true> {
    return this.until(() => this.closed, ms, "close");
  }

  /** Greeting + client flags (FIXED_NEWSTYLE | NO_ZEROES). */
  async handshake(): Promise<void> {
    const g = await this.raw(18);
    if (!g.equals(GREETING)) throw new Error(`bad greeting ${g.toString("hex")}`);
    this.send(clientFlags(3));
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * After the STARTTLS ACK was read: run the TLS handshake on this connection
   * (node:tls as the client) and read replies through it from then on.
   * Resolves once the handshake is done; rejects with the TLS error.
   */
  async startTls(opts: ConnectionOptions): Promise<TLSSocket> {
    if (this.reader.pending !== 0) throw new Error(`${this.reader.pending} unread bytes before TLS`);
    const raw = this.socket;
    raw.removeAllListeners("data");
    const t = tlsConnect({ ...opts, socket: raw });
    this.socket = t;
    this.attach(t);
    await new Promise<void>((resolve, reject) => {
      t.once("secureConnect", resolve);
      t.once("error", reject);
      t.once("close", () => reject(this.error ?? new Error("closed during the TLS handshake")));
    });
    return t;
  }
}
