/**
 * One client connection of the NBD server (STYLE.md §9): feeds the session
 * with the socket's bytes, runs its requests against the export's device,
 * writes replies whole, and has one cleanup path. Backpressure and limits are
 * described in server.ts.
 *
 * TLS: on the session's "starttls" event the connection flushes the ACK,
 * wraps its socket in a TLSSocket in the same tick (tls.ts) and feeds the
 * session again only once the handshake succeeded; from then on every read
 * and write goes through the TLSSocket.
 */
import type { Socket } from "node:net";
import type { BlockDevice } from "../common/blockdev.ts";
import { log } from "../common/debug.ts";
import { PfsError } from "../common/errors.ts";
import { nameOf } from "../common/names.ts";
import type { ClientAddress } from "./access.ts";
import { execute } from "./commands.ts";
import type { AccessDeniedInfo, ConnectionStats, NbdServer, RequestErrorInfo } from "./server.ts";
import type { NbdRequest } from "./requests.ts";
import { Session, type SessionEvent, State } from "./session.ts";
import { TlsMode } from "./starttls.ts";
import { NBD_CMD, NBD_E, NBD_OPT, NBD_REP } from "./wire.ts";

/** Replies written in one tick are batched into one writev up to this many bytes. */
const CORK_FLUSH_BYTES = 256 * 1024;

/** One client socket: feeds the session, runs its requests, writes replies whole. */
export class Connection {
  readonly stats: ConnectionStats;
  private readonly session: Session;
  /** The plain socket, replaced by its TLSSocket once STARTTLS succeeded. */
  private socket: Socket;
  private device: BlockDevice | undefined;
  private executing = 0;
  private reserved = 0;
  private ending: { hard: boolean; reason: string } | undefined;
  private paused = true;
  /** Between the STARTTLS ACK and the end of the TLS handshake: nothing is parsed. */
  private upgrading = false;
  private corked = false;
  private corkedBytes = 0;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private peerEnded = false;

  constructor(
    private readonly server: NbdServer,
    socket: Socket,
    id: number,
  ) {
    this.socket = socket;
    const client = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : "unix";
    this.stats = { id, client, export: undefined, startedAt: Date.now(), requests: 0, bytes: 0, errors: 0, reason: "", hard: false };
    const address: ClientAddress = socket.remoteAddress ? { kind: "ip", address: socket.remoteAddress } : { kind: "unix" };
    this.session = new Session(server.catalogFor(address), { tag: `conn#${id} `, tls: server.opts.tls?.mode ?? TlsMode.OFF });
    socket.on("close", () => this.onClose());
    socket.on("error", (e) => this.fail(`socket error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  }

  private readonly onData = (chunk: Buffer): void => {
    this.session.push(chunk);
    this.pump();
  };
  private readonly onEnd = (): void => {
    // Requests may still wait unparsed (caps reached): EOF counts once they are done.
    this.peerEnded = true;
    this.pump();
  };
  private readonly onDrain = (): void => this.pump();

  private listen(s: Socket): void {
    s.on("data", this.onData);
    s.on("end", this.onEnd);
    s.on("drain", this.onDrain);
  }

  start(): void {
    const s = this.socket;
    log.nbd("conn#%d from %s", this.stats.id, this.stats.client);
    s.setNoDelay(true); // proto.md "Protocol phases": both sides SHOULD disable Nagle
    if (s.remoteAddress) s.setKeepAlive(true, 60_000);
    this.listen(s);
    this.handshakeTimer = setTimeout(() => {
      if (this.session.state !== State.TRANSMISSION) this.destroy(`handshake not finished after ${this.server.opts.handshakeTimeoutMs} ms`);
    }, this.server.opts.handshakeTimeoutMs);
    this.pump();
  }

  /**
   * The STARTTLS ACK is queued: send it, then hand the socket to TLS in this
   * same tick, so that no byte the client sends after reading the ACK can be
   * read as clear text (tls.ts upgrade()). The handshake timer keeps running.
   */
  private startTls(): void {
    const tls = this.server.opts.tls;
    if (!tls) throw PfsError.internal("STARTTLS accepted without TLS configured");
    const raw = this.socket;
    this.upgrading = true;
    this.uncork();
    if (raw.readableLength > 0) return this.fail(`${raw.readableLength} clear-text bytes buffered at NBD_OPT_STARTTLS`);
    raw.off("data", this.onData);
    raw.off("end", this.onEnd);
    raw.off("drain", this.onDrain);
    const t = tls.upgrade(raw, (r) => {
      if ("error" in r) return this.fail(r.error);
      this.stats.tls = r.peer;
      log.nbd("conn#%d: %s%s", this.stats.id, r.peer.protocol, r.peer.identity ? ` as ${r.peer.identity}` : "");
      this.upgrading = false;
      this.session.tlsEstablished();
      t.on("error", (e) => this.fail(`TLS socket error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      this.paused = false; // attaching "data" makes the TLS socket flow
      this.listen(t);
      this.pump();
    });
    t.on("close", () => this.onClose());
    this.socket = t;
  }

  /** Parse and dispatch as much as the limits allow; pause the socket when they don't. */
  private pump(): void {
    try {
      this.pumpUnsafe();
    } catch (e) {
      // A bug in the session must cost this connection only, never the server.
      this.fail(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }

  private pumpUnsafe(): void {
    const o = this.server.opts;
    while (!this.ending && !this.closed && !this.upgrading) {
      if (this.executing >= o.maxRequestsInFlight || this.reserved + this.socket.writableLength >= o.maxBytesInFlight) {
        this.setPaused(true);
        return;
      }
      const ev = this.session.poll();
      if (!ev) {
        if (this.peerEnded) this.handle(this.session.eof());
        break;
      }
      this.handle(ev);
    }
    if (this.ending) this.maybeFinish();
    else if (!this.upgrading) this.setPaused(false);
  }

  private setPaused(p: boolean): void {
    if (p === this.paused || this.closed) return;
    this.paused = p;
    if (p) this.socket.pause();
    else this.socket.resume();
  }

  private handle(ev: SessionEvent): void {
    switch (ev.kind) {
      case "send":
        this.write(ev.data);
        break;
      case "ready":
        clearTimeout(this.handshakeTimer);
        this.stats.export = ev.export.name;
        this.device = this.server.deviceFor(ev.export.name);
        log.nbd("conn#%d: transmission on %j", this.stats.id, ev.export.name);
        break;
      case "request":
        this.dispatch(ev.req);
        break;
      case "starttls":
        this.startTls();
        break;
      case "refused": {
        const { id, client } = this.stats;
        const option = `NBD_OPT_${nameOf(NBD_OPT, ev.option)}`;
        const answer = ev.option === NBD_OPT.EXPORT_NAME ? "disconnect" : `NBD_REP_${nameOf(NBD_REP, ev.reply)}`;
        log.nbd("conn#%d %s: %s %j refused by the access rules -> %s", id, client, option, ev.export, answer);
        this.server.emit("access-denied", { id, client, export: ev.export, option, answer } satisfies AccessDeniedInfo);
        break;
      }
      case "end":
        if (this.ending) break;
        this.ending = { hard: ev.hard, reason: ev.reason };
        if (ev.hard) this.stats.errors++;
        this.setPaused(true);
        this.maybeFinish();
        break;
    }
  }

  private dispatch(req: NbdRequest): void {
    const bytes = req.type === NBD_CMD.READ ? req.length : 0;
    this.executing++;
    this.reserved += bytes;
    this.stats.requests++;
    const replies = this.session.replies;
    execute(req, this.device!, replies, this.server.pool)
      .then((res) => {
        this.write(res.data, res.owned);
        this.stats.bytes += res.bytes;
        if (res.error) this.requestFailed(req, res.error.errno, res.error.cause);
      })
      .catch((e: unknown) => this.fail(`internal error: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => {
        this.executing--;
        this.reserved -= bytes;
        this.pump();
      });
  }

  private requestFailed(req: NbdRequest, errno: number, error: unknown): void {
    const { id, client, export: name } = this.stats;
    this.stats.errors++;
    const info: RequestErrorInfo = { id, client, export: name, type: req.type, offset: req.offset, length: req.length, errno, error };
    log.nbd("conn#%d NBD_CMD_%s @%d+%d -> NBD_%s: %s", id, nameOf(NBD_CMD, req.type), req.offset, req.length, nameOf(NBD_E, errno), error instanceof Error ? error.message : String(error));
    this.server.emit("request-error", info);
  }

  /**
   * Write one reply; replies finishing in the same tick go out in one writev.
   * Pool buffers in `owned` go back once the socket has taken the last byte.
   */
  private write(data: Uint8Array[], owned?: Uint8Array[]): void {
    const s = this.socket;
    const pool = this.server.pool;
    if (this.closed || s.writableEnded || s.destroyed) {
      if (owned) for (const b of owned) pool.release(b);
      return;
    }
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => this.uncork());
    }
    const last = data.length - 1;
    for (let i = 0; i < last; i++) this.corkedBytes += data[i]!.length, s.write(data[i]!);
    this.corkedBytes += data[last]!.length;
    // The callback runs once (with an error if the socket dies first).
    if (owned) s.write(data[last]!, () => owned.forEach((b) => pool.release(b)));
    else s.write(data[last]!);
    // Flush big batches at once: their bytes are still in the CPU cache from the read.
    if (this.corkedBytes >= CORK_FLUSH_BYTES) this.uncork();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.corkedBytes = 0;
    this.socket.uncork();
  }

  /** Close once nothing is executing (soft) or right away (hard), after queued writes. */
  private maybeFinish(): void {
    const e = this.ending;
    if (!e || this.closed) return;
    if (!e.hard && this.executing > 0) return;
    this.stats.reason ||= e.reason;
    this.stats.hard ||= e.hard;
    if (this.socket.writableEnded) return;
    this.socket.end();
    // end() flushes queued replies first; a peer that never reads must not keep us.
    setTimeout(() => this.destroy(`${e.reason} (peer did not read the last replies)`), 2_000).unref();
  }

  /** Server shutdown: stop taking requests, finish those in flight, then EOF. */
  shutdown(): void {
    this.session.shutdown();
    if (this.session.state !== State.TRANSMISSION) return this.destroy("server is shutting down");
    this.handle({ kind: "end", hard: false, reason: "server shutdown" });
  }

  private fail(reason: string): void {
    this.stats.errors++;
    this.destroy(reason);
  }

  destroy(reason: string): void {
    if (this.closed) return;
    if (!this.stats.reason) {
      this.stats.reason = reason;
      this.stats.hard = true;
    }
    log.nbd("conn#%d: dropped: %s", this.stats.id, reason);
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.handshakeTimer);
    if (!this.stats.reason) {
      this.stats.reason = "peer closed the connection";
      this.stats.hard = true;
    }
    this.server.connectionEnded(this);
  }
}
