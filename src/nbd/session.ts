/**
 * The NBD session: a pure state machine (STYLE.md §2, §8). Bytes go in with
 * `push()`; `poll()` hands out one event at a time (bytes to send, a request
 * to execute, the end of the session) and returns `undefined` when it needs
 * more input. It never sees a socket, a timer or a BlockDevice, so the same
 * core runs in unit tests, fuzzers and the server. Pulling events one by one
 * lets the server stop parsing when its per-connection caps are reached:
 * unparsed input then stays in the kernel's socket buffer, not in memory.
 *
 * States and transitions (proto.md "Fixed newstyle negotiation", "Transmission"):
 *
 *   AWAIT_CLIENT_FLAGS --4 bytes, FIXED_NEWSTYLE set, no unknown bits--> OPTIONS
 *   AWAIT_CLIENT_FLAGS --unknown bit, or FIXED_NEWSTYLE missing----------> DEAD
 *   OPTIONS --NBD_OPT_GO ACK, or NBD_OPT_EXPORT_NAME of a known export--> TRANSMISSION
 *   OPTIONS --any other option: replies, stay----------------------------> OPTIONS
 *   OPTIONS --NBD_OPT_ABORT (after the ACK)------------------------------> CLOSED
 *   OPTIONS --NBD_OPT_STARTTLS accepted (after the ACK)------------------> START_TLS
 *   START_TLS --tlsEstablished(): negotiated state forgotten------------> OPTIONS
 *   START_TLS --any byte before the handshake (clear-text injection)----> DEAD
 *   OPTIONS --bad magic, oversized option, EXPORT_NAME unknown or refused,
 *             EXPORT_NAME before TLS in require mode------------------> DEAD
 *   TRANSMISSION --request: reply or request event, stay----------------> TRANSMISSION
 *   TRANSMISSION --NBD_CMD_DISC------------------------------------------> CLOSED
 *   TRANSMISSION --bad magic, payload > 32 MiB--------------------------> DEAD
 *   any --EOF: on a message boundary → CLOSED, mid-message → DEAD
 *
 * Recoverable faults (unknown option, bad export name, out-of-range read,
 * write to the read-only export) are answered and the session goes on;
 * protocol violations end it (DEAD = hard disconnect).
 *
 * TLS (starttls.ts): the session only decides; on an accepted STARTTLS it
 * emits the ACK and a "starttls" event, and waits in START_TLS until the
 * server has done the handshake and calls tlsEstablished().
 */
import { log } from "../common/debug.ts";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { nameOf } from "../common/names.ts";
import { ByteQueue } from "./bytequeue.ts";
import { type ExportCatalog, type ExportInfo, type Negotiated, describeReplies, handleOption, transmissionFlags } from "./options.ts";
import { ReplyMode, Replies } from "./replies.ts";
import { type NbdRequest, checkRequest } from "./requests.ts";
import { type TlsGate, TlsMode, tlsGate } from "./starttls.ts";
import {
  CLIENT_FLAGS,
  EXTENDED_REQUEST,
  MAX_PAYLOAD,
  NBD_CMD,
  NBD_CMD_FLAG,
  NBD_FLAG_C,
  NBD_MAGIC,
  NBD_OPT,
  NBD_REP,
  OPTION_REQUEST,
  REQUEST,
  decodeOptionHeader,
  decodeRequest,
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
} from "./wire.ts";

/** Re-exported: callers got it from here before the request checks moved to requests.ts. */
export type { NbdRequest };

export const State = {
  AWAIT_CLIENT_FLAGS: "AwaitClientFlags",
  OPTIONS: "Options",
  /** STARTTLS was acknowledged; waiting for the server to finish the TLS handshake. */
  START_TLS: "StartTls",
  TRANSMISSION: "Transmission",
  CLOSED: "Closed",
  DEAD: "Dead",
} as const;
export type State = (typeof State)[keyof typeof State];

export type SessionEvent =
  /** Write these buffers, in order, as one unit. */
  | { kind: "send"; data: Buffer[] }
  /** Transmission begins on this export. */
  | { kind: "ready"; export: ExportInfo }
  | { kind: "request"; req: NbdRequest }
  /** The STARTTLS ACK (sent just before) is the last clear-text byte: upgrade the connection now. */
  | { kind: "starttls" }
  /** The access policy refused this client an export (already answered, or followed by "end"). */
  | { kind: "refused"; option: number; export: string; reply: number }
  /** The session is over. hard: drop the connection; else finish in-flight work, then close. */
  | { kind: "end"; hard: boolean; reason: string; error?: PfsError };

export interface SessionOptions {
  /** Option data above this is refused with NBD_REP_ERR_TOO_BIG and a hard disconnect. */
  maxOptionLength?: number;
  /** Prefix of this session's debug log lines, e.g. "conn#3 ". */
  tag?: string;
  /** The server's TLS mode (starttls.ts). Default off. */
  tls?: TlsMode;
}

/** Largest option data we buffer: names and queries are ≤ 4096 bytes each. */
export const DEFAULT_MAX_OPTION_LENGTH = 64 * 1024;

export class Session {
  private _state: State = State.AWAIT_CLIENT_FLAGS;
  private readonly input = new ByteQueue();
  private readonly outbox: SessionEvent[] = [];
  private readonly neg: Negotiated = { structured: false, extended: false, metaExport: undefined, shuttingDown: false };
  private noZeroes = false;
  private option: { option: number; length: number } | undefined;
  /** Write payload still to drop, and the reply to send once it is gone. */
  private discard: { left: number; reply: Buffer } | undefined;
  private _export: ExportInfo | undefined;
  private _replies: Replies | undefined;
  private metaActive = false;
  private readonly maxOptionLength: number;
  private readonly tag: string;
  private readonly tlsMode: TlsMode;
  private _tls = false;

  constructor(private readonly catalog: ExportCatalog, opts: SessionOptions = {}) {
    this.maxOptionLength = opts.maxOptionLength ?? DEFAULT_MAX_OPTION_LENGTH;
    this.tag = opts.tag ?? "";
    this.tlsMode = opts.tls ?? TlsMode.OFF;
    this.outbox.push({ kind: "send", data: [encodeGreeting()] });
  }

  get state(): State {
    return this._state;
  }
  get exportInfo(): ExportInfo | undefined {
    return this._export;
  }
  /** Reply encoders for the negotiated mode; set once transmission begins. */
  get replies(): Replies {
    if (!this._replies) throw PfsError.internal("session.replies used before transmission");
    return this._replies;
  }
  /** True once tlsEstablished() was called. */
  get tls(): boolean {
    return this._tls;
  }
  /** Bytes received but not yet parsed. */
  get buffered(): number {
    return this.input.length;
  }

  push(chunk: Uint8Array): void {
    if (this._state === State.CLOSED || this._state === State.DEAD) return;
    this.input.push(chunk);
  }

  /**
   * The server finished the TLS handshake that the "starttls" event asked for.
   * Everything negotiated before is forgotten (proto.md NBD_OPT_STARTTLS: "the
   * server MUST NOT preserve any negotiation state"); the client flags stay,
   * they belong to the handshake, not to an option.
   */
  tlsEstablished(): void {
    if (this._state !== State.START_TLS) throw PfsError.internal(`tlsEstablished() in state ${this._state}`);
    this._tls = true;
    this.neg.structured = false;
    this.neg.extended = false;
    this.neg.metaExport = undefined;
    this._state = State.OPTIONS;
    log.nbd("%sTLS established; negotiated state reset", this.tag);
  }

  /** Server shutdown: answer further options with ERR_SHUTDOWN and requests with ESHUTDOWN. */
  shutdown(): void {
    this.neg.shuttingDown = true;
  }

  /** The peer closed its side. Ends the session; mid-message EOF is an error (STYLE.md §11). */
  eof(): SessionEvent {
    if (this._state === State.CLOSED || this._state === State.DEAD) return { kind: "end", hard: false, reason: "closed" };
    const partial = this.input.length > 0 || this.option !== undefined || this.discard !== undefined;
    if (partial) return this.die(`EOF in the middle of a message (${this._state}, ${this.input.length} bytes buffered)`);
    const was = this._state;
    this._state = State.CLOSED;
    return { kind: "end", hard: false, reason: `EOF in ${was}` };
  }

  /** Next event, or undefined when more input is needed (or the session is over). */
  poll(): SessionEvent | undefined {
    for (;;) {
      const ev = this.outbox.shift();
      if (ev) return ev;
      if (this._state === State.CLOSED || this._state === State.DEAD) return undefined;
      if (!this.step()) return undefined;
    }
  }

  /** Consume one message (or part of a write payload). False: not enough input. */
  private step(): boolean {
    switch (this._state) {
      case State.AWAIT_CLIENT_FLAGS:
        return this.stepClientFlags();
      case State.OPTIONS:
        return this.stepOption();
      case State.TRANSMISSION:
        return this.discard ? this.stepDiscard() : this.stepRequest();
      case State.START_TLS:
        // Only TLS records may follow the ACK, and they go to the TLS layer, never here.
        if (this.input.length === 0) return false;
        this.outbox.push(this.die(`${this.input.length} clear-text bytes after NBD_OPT_STARTTLS was acknowledged`));
        return true;
      default:
        return false;
    }
  }

  private die(reason: string): SessionEvent {
    this._state = State.DEAD;
    log.nbd("%ssession dead: %s", this.tag, reason);
    const ev: SessionEvent = { kind: "end", hard: true, reason, error: new PfsError(ErrorCode.PROTOCOL, `NBD client: ${reason}`) };
    return ev;
  }

  private stepClientFlags(): boolean {
    if (this.input.length < CLIENT_FLAGS.size) return false;
    const flags = this.input.take(CLIENT_FLAGS.size).readUInt32BE(CLIENT_FLAGS.at.client_flags);
    const known = NBD_FLAG_C.FIXED_NEWSTYLE | NBD_FLAG_C.NO_ZEROES;
    if ((flags & ~known) !== 0) {
      this.outbox.push(this.die(`unknown client flags 0x${flags.toString(16)}`));
    } else if (!(flags & NBD_FLAG_C.FIXED_NEWSTYLE)) {
      // Plain newstyle clients cannot read option replies; we only speak fixed newstyle.
      this.outbox.push(this.die("client did not set NBD_FLAG_C_FIXED_NEWSTYLE (only fixed newstyle is served)"));
    } else {
      this.noZeroes = (flags & NBD_FLAG_C.NO_ZEROES) !== 0;
      this._state = State.OPTIONS;
    }
    return true;
  }

  private stepOption(): boolean {
    if (!this.option) {
      if (this.input.length < OPTION_REQUEST.size) return false;
      const h = decodeOptionHeader(this.input.take(OPTION_REQUEST.size));
      if (h.magic !== NBD_MAGIC.IHAVEOPT) {
        this.outbox.push(this.die(`bad option magic 0x${h.magic.toString(16)}`));
        return true;
      }
      if (h.length > this.maxOptionLength) {
        // Refuse before reading a byte of it (ARCHITECTURE.md invariant 4).
        const why = `option data of ${h.length} bytes exceeds ${this.maxOptionLength}`;
        if (h.option !== NBD_OPT.EXPORT_NAME) {
          this.outbox.push({ kind: "send", data: [encodeOptionReply(h.option, NBD_REP.ERR_TOO_BIG, Buffer.from(why))] });
        }
        this.outbox.push(this.die(`${nameOf(NBD_OPT, h.option)}: ${why}`));
        return true;
      }
      this.option = { option: h.option, length: h.length };
    }
    if (this.input.length < this.option.length) return false;
    const { option, length } = this.option;
    this.option = undefined;
    const data = this.input.take(length);
    // During shutdown every option gets ERR_SHUTDOWN (options.ts), STARTTLS included.
    const gate = this.neg.shuttingDown ? undefined : tlsGate(this.tlsMode, this._tls, option, length);
    if (gate && gate.kind !== "pass") return this.tlsOption(option, gate);
    if (option === NBD_OPT.EXPORT_NAME) return this.exportName(data);

    const out = handleOption(this.neg, this.catalog, option, data);
    log.nbd("%sNBD_OPT_%s (%d bytes) -> %s", this.tag, nameOf(NBD_OPT, option), length, describeReplies(out.replies));
    this.outbox.push({ kind: "send", data: out.replies });
    if (out.refused) this.outbox.push({ kind: "refused", option, export: out.refused.export, reply: out.refused.reply });
    if (out.abort) {
      this._state = State.CLOSED;
      this.outbox.push({ kind: "end", hard: false, reason: "NBD_OPT_ABORT" });
    } else if (out.go) {
      this.enterTransmission(out.go);
    }
    return true;
  }

  /** STARTTLS, or an option that the TLS rules answer instead of the option handlers. */
  private tlsOption(option: number, gate: Exclude<TlsGate, { kind: "pass" }>): boolean {
    const name = `NBD_OPT_${nameOf(NBD_OPT, option)}`;
    if (gate.kind === "die") {
      this.outbox.push(this.die(gate.why));
    } else if (gate.kind === "reply") {
      log.nbd("%s%s -> %s", this.tag, name, describeReplies([gate.reply]));
      this.outbox.push({ kind: "send", data: [gate.reply] });
    } else if (this.input.length > 0) {
      // The client may not send a byte before it has read our ACK; bytes already
      // here were sent in clear text and must never be taken as TLS-protected.
      this.outbox.push(this.die(`${this.input.length} bytes sent after NBD_OPT_STARTTLS without waiting for its reply`));
    } else {
      log.nbd("%s%s -> NBD_REP_ACK; starting TLS", this.tag, name);
      this._state = State.START_TLS;
      this.outbox.push({ kind: "send", data: [gate.reply] }, { kind: "starttls" });
    }
    return true;
  }

  /** NBD_OPT_EXPORT_NAME cannot return an error: unknown or refused export → hard disconnect. */
  private exportName(data: Buffer): boolean {
    if (this.neg.extended) {
      this.outbox.push(this.die("NBD_OPT_EXPORT_NAME after extended headers were negotiated"));
      return true;
    }
    const name = data.toString("utf8");
    const info = this.catalog.lookup(name);
    const refusal = info && this.catalog.refusal?.(info);
    if (info && refusal) {
      this.outbox.push({ kind: "refused", option: NBD_OPT.EXPORT_NAME, export: info.name, reply: refusal.reply });
      this.outbox.push(this.die(`NBD_OPT_EXPORT_NAME: export "${info.name}": ${refusal.reason}`));
      return true;
    }
    if (!info || this.neg.shuttingDown) {
      this.outbox.push(this.die(info ? "server is shutting down" : `NBD_OPT_EXPORT_NAME: export "${name}" not found`));
      return true;
    }
    this.outbox.push({ kind: "send", data: [encodeExportNameReply(info.size, transmissionFlags(this.neg), this.noZeroes)] });
    this.enterTransmission(info);
    return true;
  }

  private enterTransmission(info: ExportInfo): void {
    this._state = State.TRANSMISSION;
    this._export = info;
    this.metaActive = this.neg.metaExport === info.name;
    const mode = this.neg.extended ? ReplyMode.EXTENDED : this.neg.structured ? ReplyMode.STRUCTURED : ReplyMode.SIMPLE;
    this._replies = new Replies(mode);
    this.outbox.push({ kind: "ready", export: info });
  }

  private stepDiscard(): boolean {
    const d = this.discard!;
    if (this.input.length === 0) return false;
    d.left -= this.input.skip(d.left);
    if (d.left > 0) return false;
    this.discard = undefined;
    this.outbox.push({ kind: "send", data: [d.reply] });
    return true;
  }

  private stepRequest(): boolean {
    const extended = this.neg.extended;
    const size = extended ? EXTENDED_REQUEST.size : REQUEST.size;
    if (this.input.length < size) return false;
    const h = decodeRequest(this.input.take(size), extended);
    const magic = extended ? NBD_MAGIC.EXTENDED_REQUEST : NBD_MAGIC.REQUEST;
    if (h.magic !== magic) {
      this.outbox.push(this.die(`bad request magic 0x${h.magic.toString(16)}, expected 0x${magic.toString(16)}`));
      return true;
    }
    // Which requests carry a payload: compact WRITE; extended with PAYLOAD_LEN.
    const hasPayload = extended ? (h.flags & NBD_CMD_FLAG.PAYLOAD_LEN) !== 0 : h.type === NBD_CMD.WRITE;
    const payload = hasPayload ? h.length : 0n;
    if (payload > BigInt(MAX_PAYLOAD)) {
      this.outbox.push(this.die(`${nameOf(NBD_CMD, h.type)} payload of ${payload} bytes exceeds ${MAX_PAYLOAD}`));
      return true;
    }
    const v = checkRequest(h, hasPayload, { neg: this.neg, metaActive: this.metaActive, exportSize: this._export!.size, replies: this.replies, tag: this.tag });
    if (v.kind === "disc") {
      this._state = State.CLOSED;
      this.outbox.push({ kind: "end", hard: false, reason: "NBD_CMD_DISC" });
    } else if (v.kind === "send" && payload > 0n) {
      // The payload must be consumed before the next header; reply once it is.
      this.discard = { left: Number(payload), reply: v.data[0]! };
    } else {
      this.outbox.push(v);
    }
    return true;
  }
}
