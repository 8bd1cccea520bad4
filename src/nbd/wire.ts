/**
 * NBD wire format: constants, one field table per message, and the codecs.
 * Source: NetworkBlockDevice/nbd doc/proto.md (master), plus the branch
 * `extension-ext-header` for NBD_OPT_EXTENDED_HEADERS (32-byte headers).
 * All integers are big-endian ("network byte order", proto.md "Conventions").
 *
 * Every message is declared once as a field table (STYLE.md §3); the encoders
 * below use the table's offsets, and test/nbd/wire.test.ts checks that the
 * tables are contiguous and have the sizes the spec gives.
 */

// ---------------------------------------------------------------- constants

/** Magic numbers (proto.md "Newstyle negotiation", "Request message", replies). */
export const NBD_MAGIC = {
  /** "NBDMAGIC", first 8 bytes the server sends. */
  INIT_PASSWD: 0x4e42444d41474943n,
  /** "IHAVEOPT": server greeting, and the start of every client option. */
  IHAVEOPT: 0x49484156454f5054n,
  /** Every fixed-newstyle option reply. */
  OPTION_REPLY: 0x3e889045565a9n,
  REQUEST: 0x25609513,
  EXTENDED_REQUEST: 0x21e41c71,
  SIMPLE_REPLY: 0x67446698,
  STRUCTURED_REPLY: 0x668e33ef,
  EXTENDED_REPLY: 0x6e8a278c,
} as const;

/** Handshake flags, server → client, 16 bits. */
export const NBD_FLAG = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;
/** Client flags, 32 bits. Any other bit: the server MUST drop the connection. */
export const NBD_FLAG_C = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Transmission flags, 16 bits, in NBD_INFO_EXPORT / the EXPORT_NAME reply. */
export const NBD_TX_FLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
  BLOCK_STATUS_PAYLOAD: 1 << 12,
} as const;

export const NBD_OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

/** Option reply types; errors have bit 31 set. */
export const NBD_REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
  ERR_EXT_HEADER_REQD: 0x8000000a,
} as const;

export const NBD_INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const NBD_CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const NBD_CMD_FLAG = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  PAYLOAD_LEN: 1 << 5,
} as const;

export const NBD_REPLY_FLAG = { DONE: 1 << 0 } as const;

export const NBD_REPLY_TYPE = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  BLOCK_STATUS_EXT: 6,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** Error values (proto.md "Error values"); not the host's errno numbers. */
export const NBD_E = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** `base:allocation` status flags (proto.md "base:allocation metadata context"). */
export const NBD_STATE = { HOLE: 1 << 0, ZERO: 1 << 1 } as const;

/** The only metadata context we serve, and the id we give it in SET_META_CONTEXT. */
export const BASE_ALLOCATION = "base:allocation";
export const BASE_ALLOCATION_ID = 1;

/** Size constraints we advertise (proto.md "Size constraints"): any alignment, 32 MiB max. */
export const MIN_BLOCK_SIZE = 1;
export const MAX_PAYLOAD = 32 * 1024 * 1024;
/** Strings (names, messages) MUST be no longer than 4096 bytes (proto.md "Conventions"). */
export const MAX_STRING = 4096;

// ---------------------------------------------------------------- field tables

export interface Field {
  readonly name: string;
  readonly offset: number;
  readonly width: number;
  readonly doc: string;
}
export interface Struct<N extends string = string> {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly Field[];
  /** Offset of each field by name. */
  readonly at: Readonly<Record<N, number>>;
}

function struct<const F extends readonly Field[]>(name: string, fields: F): Struct<F[number]["name"]> {
  const at = {} as Record<F[number]["name"], number>;
  let size = 0;
  for (const f of fields) {
    at[f.name as F[number]["name"]] = f.offset;
    size = Math.max(size, f.offset + f.width);
  }
  return { name, size, fields, at };
}

/** Server greeting (fixed newstyle): NBDMAGIC, IHAVEOPT, handshake flags. */
export const GREETING = struct("greeting", [
  { name: "passwd", offset: 0, width: 8, doc: "NBDMAGIC" },
  { name: "magic", offset: 8, width: 8, doc: "IHAVEOPT" },
  { name: "handshake_flags", offset: 16, width: 2, doc: "NBD_FLAG_*" },
] as const);

export const CLIENT_FLAGS = struct("client flags", [
  { name: "client_flags", offset: 0, width: 4, doc: "NBD_FLAG_C_*" },
] as const);

export const OPTION_REQUEST = struct("option request", [
  { name: "magic", offset: 0, width: 8, doc: "IHAVEOPT" },
  { name: "option", offset: 8, width: 4, doc: "NBD_OPT_*" },
  { name: "length", offset: 12, width: 4, doc: "bytes of option data that follow" },
] as const);

export const OPTION_REPLY = struct("option reply", [
  { name: "magic", offset: 0, width: 8, doc: "0x3e889045565a9" },
  { name: "option", offset: 8, width: 4, doc: "the option this answers" },
  { name: "reply_type", offset: 12, width: 4, doc: "NBD_REP_*" },
  { name: "length", offset: 16, width: 4, doc: "bytes of reply data that follow" },
] as const);

/** Reply to NBD_OPT_EXPORT_NAME; 124 zero bytes follow unless NO_ZEROES was agreed. */
export const EXPORT_NAME_REPLY = struct("export name reply", [
  { name: "size", offset: 0, width: 8, doc: "export size in bytes" },
  { name: "transmission_flags", offset: 8, width: 2, doc: "NBD_FLAG_* (transmission)" },
] as const);
export const EXPORT_NAME_PADDING = 124;

export const INFO_EXPORT = struct("NBD_INFO_EXPORT", [
  { name: "info", offset: 0, width: 2, doc: "NBD_INFO_EXPORT" },
  { name: "size", offset: 2, width: 8, doc: "export size in bytes" },
  { name: "transmission_flags", offset: 10, width: 2, doc: "NBD_FLAG_* (transmission)" },
] as const);

export const INFO_BLOCK_SIZE = struct("NBD_INFO_BLOCK_SIZE", [
  { name: "info", offset: 0, width: 2, doc: "NBD_INFO_BLOCK_SIZE" },
  { name: "minimum", offset: 2, width: 4, doc: "minimum block size" },
  { name: "preferred", offset: 6, width: 4, doc: "preferred block size" },
  { name: "maximum", offset: 10, width: 4, doc: "maximum payload size" },
] as const);

export const REQUEST = struct("request", [
  { name: "magic", offset: 0, width: 4, doc: "NBD_REQUEST_MAGIC" },
  { name: "flags", offset: 4, width: 2, doc: "NBD_CMD_FLAG_*" },
  { name: "type", offset: 6, width: 2, doc: "NBD_CMD_*" },
  { name: "cookie", offset: 8, width: 8, doc: "opaque, echoed in the reply" },
  { name: "offset", offset: 16, width: 8, doc: "byte offset into the export" },
  { name: "length", offset: 24, width: 4, doc: "effect length, or WRITE payload length" },
] as const);

export const EXTENDED_REQUEST = struct("extended request", [
  { name: "magic", offset: 0, width: 4, doc: "NBD_EXTENDED_REQUEST_MAGIC" },
  { name: "flags", offset: 4, width: 2, doc: "NBD_CMD_FLAG_*" },
  { name: "type", offset: 6, width: 2, doc: "NBD_CMD_*" },
  { name: "cookie", offset: 8, width: 8, doc: "opaque, echoed in the reply" },
  { name: "offset", offset: 16, width: 8, doc: "byte offset into the export" },
  { name: "length", offset: 24, width: 8, doc: "payload length if PAYLOAD_LEN, else effect length" },
] as const);

export const SIMPLE_REPLY = struct("simple reply", [
  { name: "magic", offset: 0, width: 4, doc: "NBD_SIMPLE_REPLY_MAGIC" },
  { name: "error", offset: 4, width: 4, doc: "NBD_E* or 0" },
  { name: "cookie", offset: 8, width: 8, doc: "the request's cookie" },
] as const);

export const STRUCTURED_REPLY = struct("structured reply chunk", [
  { name: "magic", offset: 0, width: 4, doc: "NBD_STRUCTURED_REPLY_MAGIC" },
  { name: "flags", offset: 4, width: 2, doc: "NBD_REPLY_FLAG_*" },
  { name: "type", offset: 6, width: 2, doc: "NBD_REPLY_TYPE_*" },
  { name: "cookie", offset: 8, width: 8, doc: "the request's cookie" },
  { name: "length", offset: 16, width: 4, doc: "payload bytes that follow" },
] as const);

export const EXTENDED_REPLY = struct("extended reply chunk", [
  { name: "magic", offset: 0, width: 4, doc: "NBD_EXTENDED_REPLY_MAGIC" },
  { name: "flags", offset: 4, width: 2, doc: "NBD_REPLY_FLAG_*" },
  { name: "type", offset: 6, width: 2, doc: "NBD_REPLY_TYPE_*" },
  { name: "cookie", offset: 8, width: 8, doc: "the request's cookie" },
  { name: "offset", offset: 16, width: 8, doc: "the request's offset, echoed" },
  { name: "length", offset: 24, width: 8, doc: "payload bytes that follow" },
] as const);

/** Payloads of reply chunks. */
export const OFFSET_HOLE = struct("NBD_REPLY_TYPE_OFFSET_HOLE", [
  { name: "offset", offset: 0, width: 8, doc: "absolute offset of the hole" },
  { name: "hole_size", offset: 8, width: 4, doc: "bytes that read as zero, nonzero" },
] as const);
export const ERROR_CHUNK = struct("NBD_REPLY_TYPE_ERROR", [
  { name: "error", offset: 0, width: 4, doc: "NBD_E*, nonzero" },
  { name: "message_length", offset: 4, width: 2, doc: "bytes of UTF-8 message that follow" },
] as const);
export const BLOCK_DESCRIPTOR = struct("block status descriptor", [
  { name: "length", offset: 0, width: 4, doc: "extent length, nonzero" },
  { name: "status_flags", offset: 4, width: 4, doc: "NBD_STATE_*" },
] as const);
export const BLOCK_DESCRIPTOR_EXT = struct("extended block status descriptor", [
  { name: "length", offset: 0, width: 8, doc: "extent length, nonzero" },
  { name: "status_flags", offset: 8, width: 8, doc: "NBD_STATE_*; upper 32 bits zero for base:" },
] as const);

export const ALL_STRUCTS: readonly Struct[] = [
  GREETING, CLIENT_FLAGS, OPTION_REQUEST, OPTION_REPLY, EXPORT_NAME_REPLY, INFO_EXPORT, INFO_BLOCK_SIZE,
  REQUEST, EXTENDED_REQUEST, SIMPLE_REPLY, STRUCTURED_REPLY, EXTENDED_REPLY, OFFSET_HOLE, ERROR_CHUNK,
  BLOCK_DESCRIPTOR, BLOCK_DESCRIPTOR_EXT,
];

// ---------------------------------------------------------------- decoded messages

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}

/** A transmission request header, compact or extended. 64-bit fields stay bigint. */
export interface RequestHeader {
  magic: number;
  flags: number;
  type: number;
  cookie: bigint;
  offset: bigint;
  length: bigint;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  const A = OPTION_REQUEST.at;
  return { magic: b.readBigUInt64BE(A.magic), option: b.readUInt32BE(A.option), length: b.readUInt32BE(A.length) };
}

/** `b` holds REQUEST.size bytes (compact) or EXTENDED_REQUEST.size bytes. */
export function decodeRequest(b: Buffer, extended: boolean): RequestHeader {
  const A = extended ? EXTENDED_REQUEST.at : REQUEST.at;
  return {
    magic: b.readUInt32BE(A.magic),
    flags: b.readUInt16BE(A.flags),
    type: b.readUInt16BE(A.type),
    cookie: b.readBigUInt64BE(A.cookie),
    offset: b.readBigUInt64BE(A.offset),
    length: extended ? b.readBigUInt64BE(A.length) : BigInt(b.readUInt32BE(A.length)),
  };
}

// ---------------------------------------------------------------- encoders

export function encodeGreeting(): Buffer {
  const b = Buffer.alloc(GREETING.size);
  b.writeBigUInt64BE(NBD_MAGIC.INIT_PASSWD, GREETING.at.passwd);
  b.writeBigUInt64BE(NBD_MAGIC.IHAVEOPT, GREETING.at.magic);
  b.writeUInt16BE(NBD_FLAG.FIXED_NEWSTYLE | NBD_FLAG.NO_ZEROES, GREETING.at.handshake_flags);
  return b;
}

/** One option reply: 20-byte header plus `data` in the same buffer. */
export function encodeOptionReply(option: number, type: number, data: Uint8Array = EMPTY): Buffer {
  const A = OPTION_REPLY.at;
  const b = Buffer.allocUnsafe(OPTION_REPLY.size + data.length);
  b.writeBigUInt64BE(NBD_MAGIC.OPTION_REPLY, A.magic);
  b.writeUInt32BE(option, A.option);
  b.writeUInt32BE(type, A.reply_type);
  b.writeUInt32BE(data.length, A.length);
  b.set(data, OPTION_REPLY.size);
  return b;
}

export function encodeExportNameReply(size: number, txFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(EXPORT_NAME_REPLY.size + (noZeroes ? 0 : EXPORT_NAME_PADDING));
  b.writeBigUInt64BE(BigInt(size), EXPORT_NAME_REPLY.at.size);
  b.writeUInt16BE(txFlags, EXPORT_NAME_REPLY.at.transmission_flags);
  return b;
}

export function encodeInfoExport(size: number, txFlags: number): Buffer {
  const b = Buffer.allocUnsafe(INFO_EXPORT.size);
  b.writeUInt16BE(NBD_INFO.EXPORT, INFO_EXPORT.at.info);
  b.writeBigUInt64BE(BigInt(size), INFO_EXPORT.at.size);
  b.writeUInt16BE(txFlags, INFO_EXPORT.at.transmission_flags);
  return b;
}

export function encodeInfoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const b = Buffer.allocUnsafe(INFO_BLOCK_SIZE.size);
  b.writeUInt16BE(NBD_INFO.BLOCK_SIZE, INFO_BLOCK_SIZE.at.info);
  b.writeUInt32BE(minimum, INFO_BLOCK_SIZE.at.minimum);
  b.writeUInt32BE(preferred, INFO_BLOCK_SIZE.at.preferred);
  b.writeUInt32BE(maximum, INFO_BLOCK_SIZE.at.maximum);
  return b;
}

/** NBD_INFO_NAME / NBD_INFO_DESCRIPTION: u16 type then the string. */
export function encodeInfoString(info: number, s: string): Buffer {
  const text = Buffer.from(s, "utf8");
  const b = Buffer.allocUnsafe(2 + text.length);
  b.writeUInt16BE(info, 0);
  text.copy(b, 2);
  return b;
}

/** u32 length-prefixed string, optionally followed by more text (NBD_REP_SERVER). */
export function encodeLengthPrefixed(s: string, rest = ""): Buffer {
  const text = Buffer.from(s, "utf8");
  const tail = Buffer.from(rest, "utf8");
  const b = Buffer.allocUnsafe(4 + text.length + tail.length);
  b.writeUInt32BE(text.length, 0);
  text.copy(b, 4);
  tail.copy(b, 4 + text.length);
  return b;
}

/** NBD_REP_META_CONTEXT payload: u32 context id then the name. */
export function encodeMetaContext(id: number, name: string): Buffer {
  const text = Buffer.from(name, "utf8");
  const b = Buffer.allocUnsafe(4 + text.length);
  b.writeUInt32BE(id, 0);
  text.copy(b, 4);
  return b;
}

export const EMPTY = Buffer.alloc(0);

/** Cut a message to at most MAX_STRING bytes of UTF-8 without splitting a character. */
export function clampMessage(msg: string, max = MAX_STRING): Buffer {
  const b = Buffer.from(msg, "utf8");
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}
