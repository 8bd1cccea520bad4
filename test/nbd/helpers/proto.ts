/**
 * A naive, test-only NBD client codec written straight from doc/proto.md with
 * literal magic numbers and offsets, independent of src/nbd/wire.ts, so the
 * tests compare the server against a second reading of the spec.
 */

/** Big-endian builder: push fields, get bytes. */
export class Bytes {
  private parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint | number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    this.parts.push(Buffer.from(s, "utf8"));
    return this;
  }
  raw(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export const IHAVEOPT = 0x49484156454f5054n;
export const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8, LIST_META: 9, SET_META: 10, EXTENDED_HEADERS: 11 };
export const REP = { ACK: 1, SERVER: 2, INFO: 3, META_CONTEXT: 4, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006, ERR_SHUTDOWN: 0x80000007, ERR_TOO_BIG: 0x80000009, ERR_EXT_HEADER_REQD: 0x8000000a };
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 };
export const CMDF = { FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16, PAYLOAD_LEN: 32 };
export const ERR = { EPERM: 1, EIO: 5, EINVAL: 22, ESHUTDOWN: 108 };
export const RT = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, BLOCK_STATUS_EXT: 6, ERROR: 0x8001, ERROR_OFFSET: 0x8002 };

export function clientFlags(flags: number): Buffer {
  return new Bytes().u32(flags).build();
}

export function option(opt: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  return new Bytes().u64(IHAVEOPT).u32(opt).u32(data.length).raw(data).build();
}

/** NBD_OPT_INFO / NBD_OPT_GO data. */
export function goData(name: string, infos: number[] = []): Buffer {
  const b = new Bytes().u32(Buffer.byteLength(name)).str(name).u16(infos.length);
  for (const i of infos) b.u16(i);
  return b.build();
}

/** NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT data. */
export function metaData(name: string, queries: string[]): Buffer {
  const b = new Bytes().u32(Buffer.byteLength(name)).str(name).u32(queries.length);
  for (const q of queries) b.u32(Buffer.byteLength(q)).str(q);
  return b.build();
}

export interface Req {
  flags?: number;
  type: number;
  cookie: bigint | number;
  offset?: bigint | number;
  length?: bigint | number;
  payload?: Uint8Array;
}

/** Compact (28-byte) request, magic 0x25609513. */
export function request(r: Req): Buffer {
  const b = new Bytes().u32(0x25609513).u16(r.flags ?? 0).u16(r.type).u64(r.cookie).u64(r.offset ?? 0).u32(Number(r.length ?? 0));
  if (r.payload) b.raw(r.payload);
  return b.build();
}

/** Extended (32-byte) request, magic 0x21e41c71. */
export function extRequest(r: Req): Buffer {
  const b = new Bytes().u32(0x21e41c71).u16(r.flags ?? 0).u16(r.type).u64(r.cookie).u64(r.offset ?? 0).u64(r.length ?? 0);
  if (r.payload) b.raw(r.payload);
  return b.build();
}

/** The 18-byte greeting a fixed-newstyle server with NO_ZEROES must send. */
export const GREETING = new Bytes().u64(0x4e42444d41474943n).u64(IHAVEOPT).u16(3).build();

// ------------------------------------------------------------------ parsing

export interface OptReply {
  kind: "opt";
  option: number;
  type: number;
  data: Buffer;
}
export interface SimpleReply {
  kind: "simple";
  error: number;
  cookie: bigint;
  data?: Buffer;
}
export interface Chunk {
  kind: "chunk";
  flags: number;
  type: number;
  cookie: bigint;
  /** Extended replies only: the echoed request offset. */
  reqOffset?: bigint;
  payload: Buffer;
}
export type Reply = OptReply | SimpleReply | Chunk;

/**
 * Incremental parser of the server → client stream after the greeting.
 * Simple READ replies carry no length, so `expectRead(cookie, n)` tells it.
 */
export class ReplyReader {
  private buf = Buffer.alloc(0);
  private reads = new Map<bigint, number>();
  /** "options" until the caller switches to transmission. */
  phase: "options" | "transmission" = "options";
  extended = false;

  expectRead(cookie: bigint | number, length: number): void {
    this.reads.set(BigInt(cookie), length);
  }
  push(b: Uint8Array): void {
    this.buf = Buffer.concat([this.buf, b]);
  }
  get pending(): number {
    return this.buf.length;
  }
  /** Take `n` raw bytes (e.g. the greeting or an EXPORT_NAME reply). */
  raw(n: number): Buffer | undefined {
    if (this.buf.length < n) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  next(): Reply | undefined {
    const b = this.buf;
    if (this.phase === "options") {
      if (b.length < 20) return undefined;
      if (b.readBigUInt64BE(0) !== 0x3e889045565a9n) throw new Error(`bad option reply magic ${b.readBigUInt64BE(0).toString(16)}`);
      const len = b.readUInt32BE(16);
      if (b.length < 20 + len) return undefined;
      this.buf = b.subarray(20 + len);
      return { kind: "opt", option: b.readUInt32BE(8), type: b.readUInt32BE(12), data: Buffer.from(b.subarray(20, 20 + len)) };
    }
    if (b.length < 4) return undefined;
    const magic = b.readUInt32BE(0);
    if (magic === 0x67446698) {
      if (b.length < 16) return undefined;
      const error = b.readUInt32BE(4);
      const cookie = b.readBigUInt64BE(8);
      const n = error === 0 ? (this.reads.get(cookie) ?? 0) : 0;
      if (b.length < 16 + n) return undefined;
      this.reads.delete(cookie);
      this.buf = b.subarray(16 + n);
      return n > 0 ? { kind: "simple", error, cookie, data: Buffer.from(b.subarray(16, 16 + n)) } : { kind: "simple", error, cookie };
    }
    if (magic === 0x668e33ef) {
      if (b.length < 20) return undefined;
      const len = b.readUInt32BE(16);
      if (b.length < 20 + len) return undefined;
      this.buf = b.subarray(20 + len);
      return { kind: "chunk", flags: b.readUInt16BE(4), type: b.readUInt16BE(6), cookie: b.readBigUInt64BE(8), payload: Buffer.from(b.subarray(20, 20 + len)) };
    }
    if (magic === 0x6e8a278c) {
      if (b.length < 32) return undefined;
      const len = Number(b.readBigUInt64BE(24));
      if (b.length < 32 + len) return undefined;
      this.buf = b.subarray(32 + len);
      return {
        kind: "chunk",
        flags: b.readUInt16BE(4),
        type: b.readUInt16BE(6),
        cookie: b.readBigUInt64BE(8),
        reqOffset: b.readBigUInt64BE(16),
        payload: Buffer.from(b.subarray(32, 32 + len)),
      };
    }
    throw new Error(`bad reply magic 0x${magic.toString(16)}`);
  }
  all(): Reply[] {
    const out: Reply[] = [];
    for (let r = this.next(); r; r = this.next()) out.push(r);
    return out;
  }
}

/** Decode an error chunk payload (ERROR or ERROR_OFFSET). */
export function errorChunk(c: Chunk): { error: number; message: string; offset?: bigint } {
  const error = c.payload.readUInt32BE(0);
  const mlen = c.payload.readUInt16BE(4);
  const message = c.payload.subarray(6, 6 + mlen).toString("utf8");
  return c.type === RT.ERROR_OFFSET ? { error, message, offset: c.payload.readBigUInt64BE(6 + mlen) } : { error, message };
}

/** Decode a BLOCK_STATUS or BLOCK_STATUS_EXT payload. */
export function statusChunk(c: Chunk): { context: number; extents: [number, number][] } {
  const p = c.payload;
  const context = p.readUInt32BE(0);
  const extents: [number, number][] = [];
  if (c.type === RT.BLOCK_STATUS_EXT) {
    const count = p.readUInt32BE(4);
    for (let i = 0; i < count; i++) extents.push([Number(p.readBigUInt64BE(8 + 16 * i)), Number(p.readBigUInt64BE(16 + 16 * i))]);
  } else {
    for (let o = 4; o < p.length; o += 8) extents.push([p.readUInt32BE(o), p.readUInt32BE(o + 4)]);
  }
  return { context, extents };
}

/** Reassemble a structured READ's content chunks into bytes (holes → zeros). */
export function assemble(chunks: Chunk[], offset: number, length: number): { data: Buffer; covered: number } {
  const data = Buffer.alloc(length, 0xee);
  let covered = 0;
  for (const c of chunks) {
    if (c.type === RT.OFFSET_DATA) {
      const at = Number(c.payload.readBigUInt64BE(0)) - offset;
      c.payload.copy(data, at, 8);
      covered += c.payload.length - 8;
    } else if (c.type === RT.OFFSET_HOLE) {
      const at = Number(c.payload.readBigUInt64BE(0)) - offset;
      const n = c.payload.readUInt32BE(8);
      data.fill(0, at, at + n);
      covered += n;
    }
  }
  return { data, covered };
}
