import { describe, expect, it } from "vitest";
import type { BlockDevice } from "../../src/common/blockdev.ts";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { BufferPool } from "../../src/nbd/bufpool.ts";
import { MAX_STATUS_EXTENTS, execute, toNbdError, walkAllocation } from "../../src/nbd/commands.ts";
import { ReplyMode, Replies } from "../../src/nbd/replies.ts";
import type { NbdRequest } from "../../src/nbd/session.ts";
import { NBD_CMD, NBD_E } from "../../src/nbd/wire.ts";
import { MemDevice, pattern } from "./helpers/memdev.ts";
import { CMDF, type Chunk, ERR, RT, type Reply, ReplyReader, assemble, errorChunk, statusChunk } from "./helpers/proto.ts";

const SIZE = 256 * 1024;
const data = pattern(SIZE, 7);
// zeros at [64K, 96K) and [192K, 256K)
const zeros: [number, number][] = [[65536, 32768], [196608, 65536]];

function req(type: NbdRequest["type"], offset: number, length: number, flags = 0, cookie = 1n): NbdRequest {
  return { type, flags, cookie, offset, length, rawOffset: BigInt(offset) };
}

function parse(bufs: Uint8Array[], reads: [bigint, number][] = []): Reply[] {
  const r = new ReplyReader();
  r.phase = "transmission";
  for (const [c, n] of reads) r.expectRead(c, n);
  for (const b of bufs) r.push(b);
  const out = r.all();
  expect(r.pending).toBe(0);
  return out;
}

/** Byte-exact comparison without vitest's slow deep equality on large buffers. */
function expectSame(got: Uint8Array | false | undefined, want: Buffer): void {
  expect(got).toBeInstanceOf(Uint8Array);
  const g = Buffer.from(got as Uint8Array);
  const i = g.findIndex((b, k) => b !== want[k]);
  expect({ length: g.length, firstDiff: g.length === want.length ? i : "n/a" }).toEqual({ length: want.length, firstDiff: -1 });
}

function expected(offset: number, length: number): Buffer {
  const e = Buffer.from(data.subarray(offset, offset + length));
  for (const [o, n] of zeros) {
    const s = Math.max(o, offset);
    const t = Math.min(o + n, offset + length);
    if (t > s) e.fill(0, s - offset, t - offset);
  }
  return e;
}

describe("READ, simple replies", () => {
  it("sends the header and then exactly the bytes", async () => {
    const dev = new MemDevice(data, { zeros });
    const res = await execute(req(NBD_CMD.READ, 1000, 70000), dev, new Replies(ReplyMode.SIMPLE));
    const [r] = parse(res.data, [[1n, 70000]]);
    expect(r).toMatchObject({ kind: "simple", error: 0, cookie: 1n });
    expectSame(r!.kind === "simple" && r!.data, expected(1000, 70000));
    expect(res.bytes).toBe(70000);
  });

  it("reports a failed read in the header and sends no data", async () => {
    const dev = new MemDevice(data, { bad: [8192, 12288] });
    const res = await execute(req(NBD_CMD.READ, 0, 16384), dev, new Replies(ReplyMode.SIMPLE));
    expect(parse(res.data)).toEqual([{ kind: "simple", error: ERR.EIO, cookie: 1n }]);
    expect(res.error?.errno).toBe(NBD_E.EIO);
    expect(res.data.length).toBe(1);
  });
});

describe("READ, structured replies", () => {
  it("sends OFFSET_DATA for data and OFFSET_HOLE for zero extents, last chunk DONE", async () => {
    const dev = new MemDevice(data, { zeros });
    const res = await execute(req(NBD_CMD.READ, 32768, SIZE - 32768), dev, new Replies(ReplyMode.STRUCTURED));
    const chunks = parse(res.data) as Chunk[];
    expect(chunks.map((c) => [c.type, Number(c.payload.readBigUInt64BE(0)), c.flags])).toEqual([
      [RT.OFFSET_DATA, 32768, 0],
      [RT.OFFSET_HOLE, 65536, 0],
      [RT.OFFSET_DATA, 98304, 0],
      [RT.OFFSET_HOLE, 196608, 1],
    ]);
    const { data: got, covered } = assemble(chunks, 32768, SIZE - 32768);
    expect(covered).toBe(SIZE - 32768);
    expectSame(got, expected(32768, SIZE - 32768));
    // holes were not read from the device
    expect(dev.reads).toEqual([[32768, 32768], [98304, 98304]]);
  });

  it("with DF sends one content chunk: data with the zeros in it", async () => {
    const dev = new MemDevice(data, { zeros });
    const res = await execute(req(NBD_CMD.READ, 0, SIZE, CMDF.DF), dev, new Replies(ReplyMode.STRUCTURED));
    const chunks = parse(res.data) as Chunk[];
    expect(chunks.map((c) => [c.type, c.flags])).toEqual([[RT.OFFSET_DATA, 1]]);
    expectSame(assemble(chunks, 0, SIZE).data, expected(0, SIZE));
    // an all-zero range under DF is one hole chunk
    const hole = parse((await execute(req(NBD_CMD.READ, 65536, 4096, CMDF.DF), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(hole.map((c) => c.type)).toEqual([RT.OFFSET_HOLE]);
  });

  it("answers a piece that fails its digest with ERROR_OFFSET at the first bad byte, and still sends the good pieces", async () => {
    const dev = new MemDevice(data, { zeros, bad: [100_000, 101_000] });
    const R = new Replies(ReplyMode.STRUCTURED);
    const res = await execute(req(NBD_CMD.READ, 0, SIZE, 0, 42n), dev, R);
    const chunks = parse(res.data) as Chunk[];
    expect(chunks.map((c) => c.type)).toEqual([RT.OFFSET_DATA, RT.OFFSET_HOLE, RT.ERROR_OFFSET, RT.OFFSET_HOLE]);
    const e = errorChunk(chunks[2]!);
    expect(e.error).toBe(ERR.EIO);
    expect(e.offset).toBe(100_000n);
    expect(e.message).toContain("sha256 mismatch");
    expect(chunks.at(-1)!.flags).toBe(1);
    expect(res.error?.errno).toBe(NBD_E.EIO);
    expect((res.error?.cause as PfsError).code).toBe(ErrorCode.DIGEST);
    // the next read of good data succeeds
    const ok = parse((await execute(req(NBD_CMD.READ, 0, 65536, 0, 43n), dev, R)).data) as Chunk[];
    expect(ok.map((c) => [c.type, c.flags])).toEqual([[RT.OFFSET_DATA, 1]]);
    expectSame(assemble(ok, 0, 65536).data, expected(0, 65536));
  });

  it("uses the piece start when the device does not say where it failed", async () => {
    const dev: BlockDevice = { size: 8192, blockSize: 4096, read: async () => Promise.reject(new Error("boom")) };
    const chunks = parse((await execute(req(NBD_CMD.READ, 4096, 4096), dev, new Replies(ReplyMode.EXTENDED))).data) as Chunk[];
    expect(chunks.map((c) => [c.type, c.reqOffset])).toEqual([[RT.ERROR_OFFSET, 4096n]]);
    expect(errorChunk(chunks[0]!)).toEqual({ error: ERR.EIO, message: "internal server error", offset: 4096n });
  });

  it("treats a device returning the wrong byte count as an I/O error", async () => {
    const dev: BlockDevice = { size: 8192, blockSize: 4096, read: async () => new Uint8Array(10) };
    const res = await execute(req(NBD_CMD.READ, 0, 4096), dev, new Replies(ReplyMode.SIMPLE));
    expect(parse(res.data)).toEqual([{ kind: "simple", error: ERR.EIO, cookie: 1n }]);
  });

  it("reads everything as data when the allocation map is too fragmented or throws", async () => {
    const many: [number, number][] = Array.from({ length: 1500 }, (_, i) => [i * 128, 64]);
    const dev = new MemDevice(pattern(1500 * 128, 3), { zeros: many });
    const chunks = parse((await execute(req(NBD_CMD.READ, 0, 1500 * 128), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(chunks.map((c) => c.type)).toEqual([RT.OFFSET_DATA]);
    const thrower = new MemDevice(data);
    thrower.allocation = () => {
      throw PfsError.internal("map broken");
    };
    const c2 = parse((await execute(req(NBD_CMD.READ, 0, 4096), thrower, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(c2.map((c) => c.type)).toEqual([RT.OFFSET_DATA]);
  });
});

describe("READ into pooled buffers (devices with readInto)", () => {
  function intoDevice(bad?: [number, number]): BlockDevice {
    const dev = new MemDevice(data, { zeros, bad });
    return Object.assign(dev, {
      async readInto(offset: number, dest: Uint8Array) {
        dest.set(await dev.read(offset, dest.length));
      },
    });
  }

  it("fills buffers from the pool and lists them in `owned` for release after writing", async () => {
    const pool = new BufferPool();
    for (const mode of [ReplyMode.SIMPLE, ReplyMode.STRUCTURED]) {
      const res = await execute(req(NBD_CMD.READ, 32768, 100_000), intoDevice(), new Replies(mode), pool);
      expect(res.owned!.length).toBe(mode === ReplyMode.SIMPLE ? 1 : 2); // structured: the two data pieces around the hole
      for (const b of res.owned!) expect(b.buffer.byteLength).toBe(BufferPool.classOf(b.length));
      const reps = parse(res.data, [[1n, 100_000]]);
      const got = mode === ReplyMode.SIMPLE ? (reps[0] as { data: Buffer }).data : assemble(reps as Chunk[], 32768, 100_000).data;
      expectSame(got, expected(32768, 100_000));
    }
  });

  it("returns the buffer to the pool when the read fails", async () => {
    const pool = new BufferPool();
    const res = await execute(req(NBD_CMD.READ, 0, 16384), intoDevice([100, 200]), new Replies(ReplyMode.SIMPLE), pool);
    expect(parse(res.data)).toEqual([{ kind: "simple", error: ERR.EIO, cookie: 1n }]);
    expect(res.owned).toBeUndefined();
    expect(pool.idleBytes).toBe(16384);
  });
});

describe("CACHE and BLOCK_STATUS", () => {
  it("CACHE calls prefetch and succeeds; a device without prefetch succeeds too", async () => {
    const dev = new MemDevice(data);
    const res = await execute(req(NBD_CMD.CACHE, 4096, 8192), dev, new Replies(ReplyMode.SIMPLE));
    expect(parse(res.data)).toEqual([{ kind: "simple", error: 0, cookie: 1n }]);
    expect(dev.prefetched).toEqual([[4096, 8192]]);
    const plain: BlockDevice = { size: 1, blockSize: 4096, read: async () => new Uint8Array(1) };
    expect(parse((await execute(req(NBD_CMD.CACHE, 0, 1), plain, new Replies(ReplyMode.SIMPLE))).data)[0]).toMatchObject({ error: 0 });
    dev.prefetch = async () => Promise.reject(PfsError.digest("chunk", "a", "b"));
    const bad = parse((await execute(req(NBD_CMD.CACHE, 0, 1), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(errorChunk(bad[0]!).error).toBe(ERR.EIO);
  });

  it("BLOCK_STATUS reports zero extents as HOLE|ZERO and the rest as 0", async () => {
    const dev = new MemDevice(data, { zeros });
    const [c] = parse((await execute(req(NBD_CMD.BLOCK_STATUS, 4096, SIZE - 4096), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(c).toMatchObject({ type: RT.BLOCK_STATUS, flags: 1 });
    expect(statusChunk(c!)).toEqual({ context: 1, extents: [[61440, 0], [32768, 3], [98304, 0], [65536, 3]] });
  });

  it("BLOCK_STATUS with REQ_ONE sends one extent within the request", async () => {
    const dev = new MemDevice(data, { zeros });
    const [c] = parse((await execute(req(NBD_CMD.BLOCK_STATUS, 70000, 10000, CMDF.REQ_ONE), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(statusChunk(c!).extents).toEqual([[10000, 3]]);
  });

  it("BLOCK_STATUS without an allocation map is one allocated extent; extended mode uses BLOCK_STATUS_EXT", async () => {
    const dev: BlockDevice = { size: 2 ** 40, blockSize: 4096, read: async () => new Uint8Array(0) };
    const [c] = parse((await execute(req(NBD_CMD.BLOCK_STATUS, 0, 2 ** 36), dev, new Replies(ReplyMode.EXTENDED))).data) as Chunk[];
    expect(c!.type).toBe(RT.BLOCK_STATUS_EXT);
    expect(statusChunk(c!).extents).toEqual([[2 ** 36, 0]]);
  });

  it("BLOCK_STATUS caps the descriptor count", async () => {
    const n = MAX_STATUS_EXTENTS + 10;
    const dev = new MemDevice(Buffer.alloc(n * 2), { zeros: Array.from({ length: n }, (_, i) => [i * 2, 1] as [number, number]) });
    const [c] = parse((await execute(req(NBD_CMD.BLOCK_STATUS, 0, n * 2), dev, new Replies(ReplyMode.STRUCTURED))).data) as Chunk[];
    expect(statusChunk(c!).extents.length).toBe(MAX_STATUS_EXTENTS);
  });
});

describe("walkAllocation", () => {
  it("clips, merges same-kind neighbours and stops at a gap", () => {
    const dev = {
      size: 100,
      blockSize: 4096,
      read: async () => new Uint8Array(),
      allocation: (o: number) =>
        o < 50
          ? [{ offset: 0, length: 10, zero: false }, { offset: 10, length: 20, zero: false }, { offset: 30, length: 20, zero: true }]
          : [{ offset: 60, length: 40, zero: false }],
    };
    expect(walkAllocation(dev, 5, 95, 100)).toEqual([{ offset: 5, length: 25, zero: false }, { offset: 30, length: 20, zero: true }]);
  });
});

describe("toNbdError", () => {
  it("maps error codes to NBD errnos in one place", () => {
    expect(toNbdError(PfsError.digest("chunk", "a", "b"))).toBe(NBD_E.EIO);
    expect(toNbdError(PfsError.io("read", new Error("x")))).toBe(NBD_E.EIO);
    expect(toNbdError(PfsError.format("inode", "bad"))).toBe(NBD_E.EIO);
    expect(toNbdError(PfsError.usage("bad range"))).toBe(NBD_E.EINVAL);
    expect(toNbdError(new PfsError(ErrorCode.EXISTS, "x"))).toBe(NBD_E.EPERM);
    expect(toNbdError(new TypeError("bug"))).toBe(NBD_E.EIO);
  });
});
