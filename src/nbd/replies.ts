/**
 * Transmission-phase reply encoders, bound to what the handshake negotiated
 * (proto.md "Simple reply message", "Structured reply chunk message",
 * ext-header branch "Extended reply chunk message"):
 *
 *   simple      16-byte simple replies only (no STRUCTURED_REPLY; e.g. the kernel)
 *   structured  20-byte chunks; READ MUST use chunks, other commands MAY use
 *               a simple reply when there is no payload (we do, for success)
 *   extended    32-byte chunks for everything, never a simple reply
 *
 * Each method returns one buffer holding a whole header (and small payload);
 * READ data is passed to the socket separately so it is never copied.
 */
import {
  BLOCK_DESCRIPTOR,
  BLOCK_DESCRIPTOR_EXT,
  ERROR_CHUNK,
  EXTENDED_REPLY,
  NBD_MAGIC,
  NBD_REPLY_FLAG,
  NBD_REPLY_TYPE,
  OFFSET_HOLE,
  SIMPLE_REPLY,
  STRUCTURED_REPLY,
  clampMessage,
} from "./wire.ts";

export const ReplyMode = { SIMPLE: "simple", STRUCTURED: "structured", EXTENDED: "extended" } as const;
export type ReplyMode = (typeof ReplyMode)[keyof typeof ReplyMode];

/** One block-status descriptor before encoding. */
export interface StatusExtent {
  length: number;
  flags: number;
}

/** Bytes of chunk header for a mode (0 for simple). */
export function chunkHeaderSize(mode: ReplyMode): number {
  return mode === ReplyMode.EXTENDED ? EXTENDED_REPLY.size : mode === ReplyMode.STRUCTURED ? STRUCTURED_REPLY.size : 0;
}

export class Replies {
  readonly mode: ReplyMode;
  readonly headerSize: number;

  constructor(mode: ReplyMode) {
    this.mode = mode;
    this.headerSize = chunkHeaderSize(mode);
  }

  /** Simple reply header: magic, error, cookie. READ data (if any) follows it. */
  simple(cookie: bigint, error: number): Buffer {
    const A = SIMPLE_REPLY.at;
    const b = Buffer.allocUnsafe(SIMPLE_REPLY.size);
    b.writeUInt32BE(NBD_MAGIC.SIMPLE_REPLY, A.magic);
    b.writeUInt32BE(error, A.error);
    b.writeBigUInt64BE(cookie, A.cookie);
    return b;
  }

  /**
   * A buffer of `headerSize + extra` bytes with the chunk header written and
   * `extra` bytes left for the caller's fixed payload fields.
   */
  private chunk(flags: number, type: number, cookie: bigint, reqOffset: bigint, payload: number, extra: number): Buffer {
    const b = Buffer.allocUnsafe(this.headerSize + extra);
    if (this.mode === ReplyMode.EXTENDED) {
      const A = EXTENDED_REPLY.at;
      b.writeUInt32BE(NBD_MAGIC.EXTENDED_REPLY, A.magic);
      b.writeUInt16BE(flags, A.flags);
      b.writeUInt16BE(type, A.type);
      b.writeBigUInt64BE(cookie, A.cookie);
      b.writeBigUInt64BE(reqOffset, A.offset);
      b.writeBigUInt64BE(BigInt(payload), A.length);
    } else {
      const A = STRUCTURED_REPLY.at;
      b.writeUInt32BE(NBD_MAGIC.STRUCTURED_REPLY, A.magic);
      b.writeUInt16BE(flags, A.flags);
      b.writeUInt16BE(type, A.type);
      b.writeBigUInt64BE(cookie, A.cookie);
      b.writeUInt32BE(payload, A.length);
    }
    return b;
  }

  /** Success without payload: a simple reply, or a NONE chunk with DONE in extended mode. */
  ok(cookie: bigint, reqOffset: bigint): Buffer {
    if (this.mode !== ReplyMode.EXTENDED) return this.simple(cookie, 0);
    return this.chunk(NBD_REPLY_FLAG.DONE, NBD_REPLY_TYPE.NONE, cookie, reqOffset, 0, 0);
  }

  /** A whole error reply: simple reply, or an ERROR chunk (with message) marked DONE. */
  error(cookie: bigint, reqOffset: bigint, errno: number, message: string): Buffer {
    if (this.mode === ReplyMode.SIMPLE) return this.simple(cookie, errno);
    const msg = clampMessage(message);
    const b = this.chunk(NBD_REPLY_FLAG.DONE, NBD_REPLY_TYPE.ERROR, cookie, reqOffset, ERROR_CHUNK.size + msg.length, ERROR_CHUNK.size + msg.length);
    const p = this.headerSize;
    b.writeUInt32BE(errno, p + ERROR_CHUNK.at.error);
    b.writeUInt16BE(msg.length, p + ERROR_CHUNK.at.message_length);
    b.set(msg, p + ERROR_CHUNK.size);
    return b;
  }

  /** ERROR_OFFSET chunk: error, message, then the absolute offset of the first bad byte. */
  errorOffset(cookie: bigint, reqOffset: bigint, errno: number, message: string, offset: number, done: boolean): Buffer {
    const msg = clampMessage(message);
    const len = ERROR_CHUNK.size + msg.length + 8;
    const b = this.chunk(done ? NBD_REPLY_FLAG.DONE : 0, NBD_REPLY_TYPE.ERROR_OFFSET, cookie, reqOffset, len, len);
    const p = this.headerSize;
    b.writeUInt32BE(errno, p + ERROR_CHUNK.at.error);
    b.writeUInt16BE(msg.length, p + ERROR_CHUNK.at.message_length);
    b.set(msg, p + ERROR_CHUNK.size);
    b.writeBigUInt64BE(BigInt(offset), p + ERROR_CHUNK.size + msg.length);
    return b;
  }

  /** OFFSET_DATA chunk header plus its 8-byte offset field; `dataLength` bytes follow. */
  dataHeader(cookie: bigint, reqOffset: bigint, offset: number, dataLength: number, done: boolean): Buffer {
    const b = this.chunk(done ? NBD_REPLY_FLAG.DONE : 0, NBD_REPLY_TYPE.OFFSET_DATA, cookie, reqOffset, 8 + dataLength, 8);
    b.writeBigUInt64BE(BigInt(offset), this.headerSize);
    return b;
  }

  /** OFFSET_HOLE chunk: [offset, offset+size) reads as zeros. */
  hole(cookie: bigint, reqOffset: bigint, offset: number, size: number, done: boolean): Buffer {
    const b = this.chunk(done ? NBD_REPLY_FLAG.DONE : 0, NBD_REPLY_TYPE.OFFSET_HOLE, cookie, reqOffset, OFFSET_HOLE.size, OFFSET_HOLE.size);
    b.writeBigUInt64BE(BigInt(offset), this.headerSize + OFFSET_HOLE.at.offset);
    b.writeUInt32BE(size, this.headerSize + OFFSET_HOLE.at.hole_size);
    return b;
  }

  /**
   * One status chunk for one metadata context: BLOCK_STATUS (u32 pairs) with
   * structured replies, BLOCK_STATUS_EXT (count + u64 pairs) with extended headers.
   */
  blockStatus(cookie: bigint, reqOffset: bigint, contextId: number, extents: readonly StatusExtent[], done: boolean): Buffer {
    const flags = done ? NBD_REPLY_FLAG.DONE : 0;
    const p = this.headerSize;
    if (this.mode === ReplyMode.EXTENDED) {
      const len = 8 + extents.length * BLOCK_DESCRIPTOR_EXT.size;
      const b = this.chunk(flags, NBD_REPLY_TYPE.BLOCK_STATUS_EXT, cookie, reqOffset, len, len);
      b.writeUInt32BE(contextId, p);
      b.writeUInt32BE(extents.length, p + 4);
      let o = p + 8;
      for (const e of extents) {
        b.writeBigUInt64BE(BigInt(e.length), o + BLOCK_DESCRIPTOR_EXT.at.length);
        b.writeBigUInt64BE(BigInt(e.flags), o + BLOCK_DESCRIPTOR_EXT.at.status_flags);
        o += BLOCK_DESCRIPTOR_EXT.size;
      }
      return b;
    }
    const len = 4 + extents.length * BLOCK_DESCRIPTOR.size;
    const b = this.chunk(flags, NBD_REPLY_TYPE.BLOCK_STATUS, cookie, reqOffset, len, len);
    b.writeUInt32BE(contextId, p);
    let o = p + 4;
    for (const e of extents) {
      b.writeUInt32BE(e.length, o + BLOCK_DESCRIPTOR.at.length);
      b.writeUInt32BE(e.flags, o + BLOCK_DESCRIPTOR.at.status_flags);
      o += BLOCK_DESCRIPTOR.size;
    }
    return b;
  }
}
