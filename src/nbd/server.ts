/**
 * The NBD server: node:net glue around Session (STYLE.md §2, §9). It owns the
 * sockets, the export map (name → BlockDevice; it knows nothing of ext or
 * PuzzleFS), the per-connection limits and the shutdown sequence.
 *
 * Backpressure: a connection parses the next request only while it has fewer
 * than `maxRequestsInFlight` requests executing and fewer than
 * `maxBytesInFlight` bytes reserved for READ replies plus bytes queued on the
 * socket. Otherwise the socket is paused, so a client that never reads its
 * replies costs at most maxBytesInFlight + one 32 MiB reply, and its unread
 * requests wait in the kernel.
 *
 * Each client is a Connection (connection.ts), which also performs the
 * STARTTLS upgrade with the server's TLS context (tls.ts). Access control:
 * each connection gets its own view of the export catalog, in which exports
 * its address may not open are unlisted and refused (access.ts).
 */
import { EventEmitter } from "node:events";
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import type { BlockDevice } from "../common/blockdev.ts";
import { log } from "../common/debug.ts";
import { PfsError } from "../common/errors.ts";
import { type ClientAddress, DenyAs } from "./access.ts";
import { BufferPool } from "./bufpool.ts";
import { Connection } from "./connection.ts";
import type { ExportCatalog, ExportInfo } from "./options.ts";
import type { ServerTls, TlsPeer } from "./tls.ts";
import { MAX_PAYLOAD, NBD_REP } from "./wire.ts";

export interface NbdExport {
  device: BlockDevice;
  /** Shown by NBD_INFO_DESCRIPTION and NBD_OPT_LIST. */
  description?: string;
}

export interface ServerOptions {
  exports: ReadonlyMap<string, NbdExport>;
  /** The export the empty name selects; default: the first export. */
  defaultExport?: string;
  /** Connections beyond this are closed as soon as they are accepted. Default 256. */
  maxConnections?: number;
  /** Requests executing at once per connection. Default 64. */
  maxRequestsInFlight?: number;
  /** Bytes of READ replies in flight per connection (≥ 32 MiB). Default 64 MiB. */
  maxBytesInFlight?: number;
  /** A client still negotiating after this is dropped; transmission has no idle limit. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** How long close() waits for in-flight replies before dropping connections. Default 10 s. */
  shutdownGraceMs?: number;
  /** STARTTLS support (mode on or require); absent: TLS off (STARTTLS gets ERR_POLICY). */
  tls?: ServerTls;
  /** Which client may open which export (access.ts AccessRules); absent: everyone, everything. */
  access?: { allows(exportName: string, client: ClientAddress): boolean };
  /** How a refused client is answered. Default "policy" (NBD_REP_ERR_POLICY). */
  denyAs?: DenyAs;
}

export interface ConnectionStats {
  id: number;
  /** "address:port", or "unix" for a unix-socket peer. */
  client: string;
  export: string | undefined;
  startedAt: number;
  requests: number;
  /** Export bytes delivered by READ. */
  bytes: number;
  errors: number;
  /** Why the connection ended. */
  reason: string;
  /** True if it ended by a hard disconnect (protocol violation, timeout, socket error). */
  hard: boolean;
  /** Set once STARTTLS succeeded. */
  tls?: TlsPeer;
}

/** A client was refused an export by the access rules (one per refused option). */
export interface AccessDeniedInfo {
  id: number;
  client: string;
  export: string;
  /** NBD_OPT_GO, NBD_OPT_INFO, ... */
  option: string;
  /** What the client was told: "NBD_REP_ERR_POLICY", "NBD_REP_ERR_UNKNOWN", or "disconnect" (EXPORT_NAME). */
  answer: string;
}

export interface RequestErrorInfo {
  id: number;
  client: string;
  export: string | undefined;
  type: number;
  offset: number;
  length: number;
  errno: number;
  error: unknown;
}

export type ListenTarget = { host: string; port: number } | { path: string };

type Resolved = Required<Omit<ServerOptions, "defaultExport" | "tls" | "access">> & Pick<ServerOptions, "tls" | "access"> & { defaultExport: string };

export class NbdServer extends EventEmitter {
  readonly opts: Resolved;
  readonly catalog: ExportCatalog;
  private readonly infos = new Map<string, ExportInfo>();
  private readonly net: Server;
  private readonly conns = new Set<Connection>();
  /** READ reply buffers, shared by all connections. */
  readonly pool = new BufferPool();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    super();
    const names = [...options.exports.keys()];
    if (names.length === 0) throw PfsError.usage("NBD server: no exports", "give at least one export");
    const defaultExport = options.defaultExport ?? names[0]!;
    if (!options.exports.has(defaultExport)) {
      throw PfsError.usage(`NBD server: default export "${defaultExport}" is not one of the exports`, `choose one of: ${names.join(", ")}`);
    }
    this.opts = {
      exports: options.exports,
      defaultExport,
      maxConnections: options.maxConnections ?? 256,
      maxRequestsInFlight: options.maxRequestsInFlight ?? 64,
      maxBytesInFlight: Math.max(options.maxBytesInFlight ?? 64 * 1024 * 1024, MAX_PAYLOAD),
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      shutdownGraceMs: options.shutdownGraceMs ?? 10_000,
      tls: options.tls,
      access: options.access,
      denyAs: options.denyAs ?? DenyAs.POLICY,
    };
    for (const [name, e] of options.exports) {
      if (!Number.isSafeInteger(e.device.size) || e.device.size < 0) throw PfsError.internal(`export "${name}": bad size ${e.device.size}`);
      this.infos.set(name, { name, size: e.device.size, blockSize: e.device.blockSize, description: e.description });
    }
    this.catalog = {
      names: () => names,
      lookup: (name) => this.infos.get(name === "" ? defaultExport : name),
    };
    this.net = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.net.maxConnections = this.opts.maxConnections;
    this.net.on("drop", (d) => {
      log.nbd("connection from %s refused: %d connections open", d?.remoteAddress, this.opts.maxConnections);
      this.emit("connection-refused", d);
    });
  }

  /** The catalog as one client sees it: exports it may not open are unlisted and refused. */
  catalogFor(client: ClientAddress): ExportCatalog {
    const access = this.opts.access;
    if (!access) return this.catalog;
    const base = this.catalog;
    const names = base.names().filter((n) => access.allows(n, client));
    const reply = this.opts.denyAs === DenyAs.UNKNOWN ? NBD_REP.ERR_UNKNOWN : NBD_REP.ERR_POLICY;
    const who = client.kind === "unix" ? "a unix-socket client" : client.address;
    return {
      names: () => names,
      lookup: (name) => base.lookup(name),
      refusal: (info) => (access.allows(info.name, client) ? undefined : { reply, reason: `no access rule admits ${who}` }),
    };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  listen(target: ListenTarget): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(PfsError.io(`NBD server: listen on ${describeTarget(target)}`, e));
      this.net.once("error", onError);
      const done = () => {
        this.net.off("error", onError);
        // e.g. EMFILE on accept: never fatal for the server without a listener.
        this.net.on("error", (e) => (this.listenerCount("error") > 0 ? this.emit("error", e) : log.nbd("server error: %s", e.message)));
        resolve();
      };
      if ("path" in target) this.net.listen(target.path, done);
      else this.net.listen(target.port, target.host, done);
    });
  }

  /** The bound address ({address, port}) or unix socket path. */
  address(): AddressInfo | string {
    const a = this.net.address();
    if (a === null) throw PfsError.internal("NBD server: address() before listen()");
    return a;
  }

  deviceFor(name: string): BlockDevice {
    return this.opts.exports.get(name)!.device;
  }

  /**
   * Graceful stop: no new connections, negotiating clients are dropped,
   * clients in transmission get their in-flight replies and then EOF. After
   * shutdownGraceMs the rest are dropped.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const closed = new Promise<void>((r) => this.net.close(() => r()));
      for (const c of this.conns) c.shutdown();
      const grace = setTimeout(() => {
        for (const c of this.conns) c.destroy("shutdown grace period expired");
      }, this.opts.shutdownGraceMs);
      const check = () => {
        if (this.conns.size > 0) return;
        clearTimeout(grace);
        this.off("connection-end", check);
        void closed.then(resolve);
      };
      this.on("connection-end", check);
      check();
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    const conn = new Connection(this, socket, this.nextId++);
    this.conns.add(conn);
    if (this.closing) conn.destroy("server is shutting down");
    else conn.start();
  }

  /** Called by a connection once its socket has closed. */
  connectionEnded(conn: Connection): void {
    this.conns.delete(conn);
    this.emit("connection-end", conn.stats);
  }
}

function describeTarget(t: ListenTarget): string {
  return "path" in t ? t.path : `${t.host}:${t.port}`;
}
