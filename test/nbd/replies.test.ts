import { describe, expect, it } from "vitest";
import { ReplyMode, Replies } from "../../src/nbd/replies.ts";
import { type Chunk, ERR, RT, ReplyReader, errorChunk, statusChunk } from "./helpers/proto.ts";

function parse(bufs: Uint8Array[], extended = false): ReturnType<ReplyReader["all"]> {
  const r = new ReplyReader();
  r.phase = "transmission";
  r.extended = extended;
  for (const b of bufs) r.push(b);
  const out = r.all();
  expect(r.pending).toBe(0);
  return out;
}

describe("Replies (simple)", () => {
  const R = new Replies(ReplyMode.SIMPLE);
  it("writes magic 0x67446698, error and cookie in 16 bytes", () => {
    const b = R.simple(0x0102030405060708n, 22);
    expect(b.toString("hex")).toBe("67446698" + "00000016" + "0102030405060708");
    expect(parse([R.ok(5n, 0n)])).toEqual([{ kind: "simple", error: 0, cookie: 5n }]);
    expect(parse([R.error(6n, 0n, ERR.EPERM, "ignored in simple mode")])).toEqual([{ kind: "simple", error: ERR.EPERM, cookie: 6n }]);
  });
});

describe("Replies (structured)", () => {
  const R = new Replies(ReplyMode.STRUCTURED);
  it("uses a simple reply for success without payload, and an ERROR chunk with DONE for errors", () => {
    expect(parse([R.ok(1n, 0n)])).toEqual([{ kind: "simple", error: 0, cookie: 1n }]);
    const [c] = parse([R.error(2n, 0n, ERR.EINVAL, "bad")]) as Chunk[];
    expect(c).toMatchObject({ kind: "chunk", flags: 1, type: RT.ERROR, cookie: 2n });
    expect(errorChunk(c!)).toEqual({ error: ERR.EINVAL, message: "bad" });
  });

  it("encodes data, hole and error-offset chunks", () => {
    const data = Buffer.from("hello");
    const [d, h, e] = parse([
      R.dataHeader(9n, 0n, 4096, 5, false),
      data,
      R.hole(9n, 0n, 8192, 4096, false),
      R.errorOffset(9n, 0n, ERR.EIO, "sha256 mismatch", 12345, true),
    ]) as Chunk[];
    expect(d).toMatchObject({ flags: 0, type: RT.OFFSET_DATA, cookie: 9n });
    expect(d!.payload.readBigUInt64BE(0)).toBe(4096n);
    expect(d!.payload.subarray(8).toString()).toBe("hello");
    expect(h).toMatchObject({ flags: 0, type: RT.OFFSET_HOLE });
    expect(h!.payload.length).toBe(12);
    expect([h!.payload.readBigUInt64BE(0), h!.payload.readUInt32BE(8)]).toEqual([8192n, 4096]);
    expect(e).toMatchObject({ flags: 1, type: RT.ERROR_OFFSET });
    expect(errorChunk(e!)).toEqual({ error: ERR.EIO, message: "sha256 mismatch", offset: 12345n });
  });

  it("encodes BLOCK_STATUS as context id plus u32 (length, flags) pairs", () => {
    const [c] = parse([R.blockStatus(3n, 0n, 1, [{ length: 4096, flags: 0 }, { length: 8192, flags: 3 }], true)]) as Chunk[];
    expect(c).toMatchObject({ flags: 1, type: RT.BLOCK_STATUS });
    expect(c!.payload.length).toBe(4 + 2 * 8);
    expect(statusChunk(c!)).toEqual({ context: 1, extents: [[4096, 0], [8192, 3]] });
  });

  it("clamps error messages to 4096 bytes", () => {
    const [c] = parse([R.error(1n, 0n, ERR.EIO, "x".repeat(10_000))]) as Chunk[];
    expect(errorChunk(c!).message.length).toBe(4096);
  });
});

describe("Replies (extended)", () => {
  const R = new Replies(ReplyMode.EXTENDED);
  it("never uses a simple reply and echoes the request offset in every 32-byte header", () => {
    const ok = R.ok(4n, 0xabcdefn);
    expect(ok.length).toBe(32);
    expect(ok.readUInt32BE(0)).toBe(0x6e8a278c);
    expect(parse([ok], true)).toEqual([{ kind: "chunk", flags: 1, type: RT.NONE, cookie: 4n, reqOffset: 0xabcdefn, payload: Buffer.alloc(0) }]);
    const [e] = parse([R.error(5n, 77n, ERR.EPERM, "ro")], true) as Chunk[];
    expect(e).toMatchObject({ type: RT.ERROR, reqOffset: 77n, flags: 1 });
  });

  it("uses BLOCK_STATUS_EXT with a descriptor count and 64-bit fields", () => {
    const big = 2 ** 33;
    const [c] = parse([R.blockStatus(3n, 0n, 1, [{ length: big, flags: 3 }], true)], true) as Chunk[];
    expect(c!.type).toBe(RT.BLOCK_STATUS_EXT);
    expect(c!.payload.length).toBe(8 + 16);
    expect(statusChunk(c!)).toEqual({ context: 1, extents: [[big, 3]] });
  });
});
