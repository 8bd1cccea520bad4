/**
 * A minimal NBD client for load and fault tests (proto.md, written from the
 * spec independently of src/nbd): fixed-newstyle handshake with NBD_OPT_GO,
 * optionally structured replies, then pipelined NBD_CMD_READs matched to
 * their replies by cookie. Cheap per request (one write, a parse over a
 * chunk list), so 64 of them in one process do not become the bottleneck.
 */
import { connect, type Socket } from "node:net";

const OPT_MAGIC = 0x49484156454f5054n;
const REP_MAGIC = 0x3e889045565a9n;
const SIMPLE = 0x67446698;
const STRUCTURED = 0x668e33ef;
const OPT = { GO: 7, STRUCTURED_REPLY: 8 } as const;
const REP = { ACK: 1, INFO: 3 } as const;
const RT = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, ERROR: 0x8001, ERROR_OFFSET: 0x8002 } as const;

export interface ReadResult {
  /** 0, or the NBD errno (5 = EIO). */
  error: number;
  /** The bytes when error is 0. */
  data?: Buffer;
  /** Structured replies: the server's error message. */
  message?: string;
}

interface Pending {
  offset: number;
  length: number;
  resolve: (r: ReadResult) => void;
  reject: (e: Error) => void;
  /** Structured: the assembled bytes and the first error. */
  buf?: Buffer;
  error?: number;
  message?: string;
}

export class NbdClient {
  size = 0;
  private chunks: Buffer[] = [];
  private have = 0;
  private waiters: Array<() => void> = [];
  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private closed: Error | undefined;
  private transmission = false;

  private constructor(
    readonly socket: Socket,
    readonly structured: boolean,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (b: Buffer) => {
      this.chunks.push(b);
      this.have += b.length;
      if (this.transmission) this.parseReplies();
      else for (const w of this.waiters.splice(0)) w();
    });
    const fail = (e: Error) => {
      this.closed ??= e;
      for (const w of this.waiters.splice(0)) w();
      for (const p of this.pending.values()) p.reject(this.closed);
      this.pending.clear();
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
  }

  static async connect(port: number, exportName: string, opts: { structured?: boolean; host?: string } = {}): Promise<NbdClient> {
    const socket = connect(port, opts.host ?? "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const c = new NbdClient(socket, !!opts.structured);
    try {
      await c.handshake(exportName);
    } catch (e) {
      socket.destroy();
      throw e;
    }
    return c;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** The next n buffered bytes (a view when they sit in one chunk). */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - got);
        c.copy(out, got, 0, k);
        got += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.have -= n;
    return out;
  }

  /** The first min(have, 32) bytes without consuming them. */
  private peek(): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= 32 || first.length === this.have) return first;
    const out = Buffer.allocUnsafe(Math.min(this.have, 32));
    let got = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, out.length - got);
      c.copy(out, got, 0, k);
      got += k;
      if (got === out.length) break;
    }
    return out;
  }

  private async need(n: number): Promise<Buffer> {
    while (this.have < n) {
      if (this.closed) throw this.closed;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.take(n);
  }

  private option(opt: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(OPT_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([h, data]));
  }

  private async optionReply(): Promise<{ type: number; data: Buffer }> {
    const h = await this.need(20);
    if (h.readBigUInt64BE(0) !== REP_MAGIC) throw new Error("bad option reply magic");
    const len = h.readUInt32BE(16);
    return { type: h.readUInt32BE(12), data: Buffer.from(await this.need(len)) };
  }

  private async handshake(name: string): Promise<void> {
    const g = await this.need(18);
    if (g.toString("latin1", 0, 8) !== "NBDMAGIC" || g.readBigUInt64BE(8) !== OPT_MAGIC) throw new Error("not a newstyle NBD server");
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(3); // FIXED_NEWSTYLE | NO_ZEROES
    this.socket.write(flags);
    if (this.structured) {
      this.option(OPT.STRUCTURED_REPLY);
      const r = await this.optionReply();
      if (r.type !== REP.ACK) throw new Error(`NBD_OPT_STRUCTURED_REPLY refused (0x${r.type.toString(16)})`);
    }
    const n = Buffer.from(name);
    const go = Buffer.alloc(4 + n.length + 2);
    go.writeUInt32BE(n.length, 0);
    n.copy(go, 4);
    this.option(OPT.GO, go);
    for (;;) {
      const r = await this.optionReply();
      if (r.type === REP.ACK) break;
      if (r.type === REP.INFO && r.data.readUInt16BE(0) === 0) this.size = Number(r.data.readBigUInt64BE(2));
      else if (r.type & 0x80000000) throw new Error(`NBD_OPT_GO refused: 0x${r.type.toString(16)} ${r.data.toString()}`);
    }
    this.transmission = true;
    if (this.have > 0) this.parseReplies();
  }

  /** NBD_CMD_READ of [offset, offset+length); resolves with the bytes or the error. */
  read(offset: number, length: number): Promise<ReadResult> {
    if (this.closed) return Promise.reject(this.closed);
    const cookie = this.nextCookie++;
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 4); // flags
    req.writeUInt16BE(0, 6); // NBD_CMD_READ
    req.writeBigUInt64BE(cookie, 8);
    req.writeBigUInt64BE(BigInt(offset), 16);
    req.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(cookie, { offset, length, resolve, reject });
      this.socket.write(req);
    });
  }

  private parseReplies(): void {
    for (;;) {
      if (this.have < 4) return;
      const head = this.peek();
      const magic = head.readUInt32BE(0);
      if (magic === SIMPLE) {
        if (this.have < 16) return;
        const error = head.readUInt32BE(4);
        const cookie = head.readBigUInt64BE(8);
        const p = this.pending.get(cookie);
        if (!p) return this.protocolError(`reply for unknown cookie ${cookie}`);
        const n = error === 0 ? p.length : 0;
        if (this.have < 16 + n) return;
        const all = this.take(16 + n);
        this.pending.delete(cookie);
        p.resolve(error === 0 ? { error, data: Buffer.from(all.subarray(16)) } : { error });
      } else if (magic === STRUCTURED) {
        if (this.have < 20) return;
        const flags = head.readUInt16BE(4);
        const type = head.readUInt16BE(6);
        const cookie = head.readBigUInt64BE(8);
        const len = head.readUInt32BE(16);
        if (this.have < 20 + len) return;
        const payload = this.take(20 + len).subarray(20);
        const p = this.pending.get(cookie);
        if (!p) return this.protocolError(`chunk for unknown cookie ${cookie}`);
        p.buf ??= Buffer.alloc(p.length);
        if (type === RT.OFFSET_DATA) {
          const at = Number(payload.readBigUInt64BE(0)) - p.offset;
          if (at < 0 || at + len - 8 > p.length) return this.protocolError("OFFSET_DATA outside the request");
          payload.copy(p.buf, at, 8);
        } else if (type === RT.OFFSET_HOLE) {
          const at = Number(payload.readBigUInt64BE(0)) - p.offset;
          const n = payload.readUInt32BE(8);
          if (at < 0 || at + n > p.length) return this.protocolError("OFFSET_HOLE outside the request");
          p.buf.fill(0, at, at + n);
        } else if (type === RT.ERROR || type === RT.ERROR_OFFSET) {
          p.error ??= payload.readUInt32BE(0);
          p.message ??= payload.toString("utf8", 6, 6 + payload.readUInt16BE(4));
        } else if (type !== RT.NONE) return this.protocolError(`unexpected chunk type ${type}`);
        if (flags & 1) {
          this.pending.delete(cookie);
          p.resolve(p.error ? { error: p.error, message: p.message } : { error: 0, data: p.buf });
        }
      } else {
        return this.protocolError(`bad reply magic 0x${magic.toString(16)}`);
      }
    }
  }

  private protocolError(why: string): void {
    this.closed = new Error(`NBD protocol error: ${why}`);
    this.socket.destroy(this.closed);
  }

  /** NBD_CMD_DISC and a clean close. */
  async close(): Promise<void> {
    if (this.closed) return;
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(2, 6);
    this.socket.end(req);
    await new Promise<void>((r) => (this.socket.destroyed ? r() : this.socket.once("close", () => r())));
  }

  /** Drop the connection without a word (a killed client). */
  kill(): void {
    this.socket.resetAndDestroy();
  }
}
