/**
 * Bad input and faults (issue "Bad input and faults"): each one answered per
 * the spec or closing only that connection, memory bounded, and every other
 * client still served.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlockDevice } from "../../src/common/blockdev.ts";
import type { ConnectionStats } from "../../src/nbd/server.ts";
import { MemDevice, pattern } from "./helpers/memdev.ts";
import { RawClient, type Running, pyCase, sha256, startServer } from "./helpers/net.ts";
import { Bytes, CMD, type Chunk, type OptReply, ERR, IHAVEOPT, OPT, REP, RT, type SimpleReply, clientFlags, errorChunk, goData, option, request } from "./helpers/proto.ts";

const MiB = 1 << 20;
const SIZE = 4 * MiB;
const bytes = pattern(SIZE, 9);

/** A large device whose reads cost no work: every read is a view of one buffer. */
class CheapDevice implements BlockDevice {
  readonly blockSize = 4096;
  readonly block = pattern(32 * MiB, 4);
  reads = 0;
  constructor(readonly size: number) {}
  async read(_offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    return this.block.subarray(0, length);
  }
}

let srv: Running;
const cheap = new CheapDevice(4096 * MiB);
const ended: ConnectionStats[] = [];

beforeAll(async () => {
  srv = await startServer({ disk: { device: new MemDevice(bytes) }, cheap: { device: cheap } }, { handshakeTimeoutMs: 400 });
  srv.server.on("connection-end", (s: ConnectionStats) => ended.push(s));
});
afterAll(async () => {
  await srv?.stop();
});

/** Handshake and NBD_OPT_GO to `name` with simple replies; the client is then in transmission. */
async function attach(name = "disk", structured = false): Promise<RawClient> {
  const c = await RawClient.connect(srv.port);
  await c.handshake();
  if (structured) {
    c.send(option(OPT.STRUCTURED_REPLY));
    expect(await c.reply()).toMatchObject({ type: REP.ACK });
  }
  c.send(option(OPT.GO, goData(name)));
  for (;;) if (((await c.reply()) as OptReply).type === REP.ACK) break;
  c.reader.phase = "transmission";
  return c;
}

/** A second, well-behaved client: read 4 KiB at `off` from "disk" and check it. */
async function goodRead(off = 8192): Promise<void> {
  const c = await attach();
  try {
    c.reader.expectRead(99, 4096);
    c.send(request({ type: CMD.READ, cookie: 99, offset: off, length: 4096 }));
    const r = (await c.reply()) as SimpleReply;
    expect(r.error).toBe(0);
    expect(r.data!.equals(bytes.subarray(off, off + 4096))).toBe(true);
  } finally {
    c.close();
  }
}

async function statsFor(pred: (s: ConnectionStats) => boolean): Promise<ConnectionStats> {
  for (let i = 0; i < 200; i++) {
    const s = ended.find(pred);
    if (s) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("connection never ended");
}

describe("bad handshakes", () => {
  it("garbage instead of a handshake closes that connection only", async () => {
    const c = await RawClient.connect(srv.port);
    const port = c.socket.localPort;
    await c.raw(18);
    c.send(Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    await c.waitClosed();
    const s = await statsFor((x) => x.client.endsWith(`:${port}`));
    expect(s).toMatchObject({ hard: true, export: undefined });
    expect(s.reason).toMatch(/unknown client flags/);
    await goodRead();
  });

  it("a truncated option followed by EOF is an error; a truncated option that stalls hits the handshake timeout", async () => {
    const c = await RawClient.connect(srv.port);
    const port = c.socket.localPort;
    await c.handshake();
    c.send(option(OPT.GO, goData("disk")).subarray(0, 21));
    c.socket.end();
    await c.waitClosed();
    expect((await statsFor((x) => x.client.endsWith(`:${port}`))).reason).toMatch(/EOF in the middle of a message/);

    const t0 = Date.now();
    const stall = await RawClient.connect(srv.port);
    const port2 = stall.socket.localPort;
    await stall.handshake();
    stall.send(option(OPT.GO, goData("disk")).subarray(0, 10));
    await stall.waitClosed(5000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect((await statsFor((x) => x.client.endsWith(`:${port2}`))).reason).toMatch(/handshake not finished after 400 ms/);
    await goodRead();
  });

  it("an option length of 4 GiB - 1 gets NBD_REP_ERR_TOO_BIG and a disconnect, without the server waiting for the data", async () => {
    const c = await RawClient.connect(srv.port);
    await c.handshake();
    c.send(new Bytes().u64(IHAVEOPT).u32(OPT.INFO).u32(0xffffffff).build());
    c.send(Buffer.alloc(65536, 0x41));
    const r = await c.reply();
    expect(r).toMatchObject({ kind: "opt", option: OPT.INFO, type: REP.ERR_TOO_BIG });
    await c.waitClosed();
    await goodRead();
  });
});

describe("bad requests", () => {
  it("a request with bad magic drops that connection; others go on", async () => {
    const c = await attach();
    const port = c.socket.localPort;
    const other = await attach();
    const bad = request({ type: CMD.READ, cookie: 1, length: 512 });
    bad.writeUInt32BE(0xdeadbeef, 0);
    c.send(bad);
    await c.waitClosed();
    expect((await statsFor((x) => x.client.endsWith(`:${port}`))).reason).toMatch(/bad request magic 0xdeadbeef/);
    other.reader.expectRead(2, 512);
    other.send(request({ type: CMD.READ, cookie: 2, length: 512 }));
    expect(((await other.reply()) as SimpleReply).data!.equals(bytes.subarray(0, 512))).toBe(true);
    other.close();
  });

  it("a read of 4 GiB and a read past the end get EINVAL and the connection stays usable", async () => {
    for (const structured of [false, true]) {
      const c = await attach("disk", structured);
      c.send(request({ type: CMD.READ, cookie: 1, offset: 0, length: 0xffffffff }));
      c.send(request({ type: CMD.READ, cookie: 2, offset: SIZE - 100, length: 4096 }));
      c.send(request({ type: CMD.READ, cookie: 3, offset: 2n ** 63n, length: 4096 }));
      for (const cookie of [1n, 2n, 3n]) {
        const r = await c.reply();
        expect((r as SimpleReply | Chunk).cookie).toBe(cookie);
        if (structured) expect(errorChunk(r as Chunk).error).toBe(ERR.EINVAL);
        else expect((r as SimpleReply).error).toBe(ERR.EINVAL);
      }
      c.reader.expectRead(4, 4096);
      c.send(request({ type: CMD.READ, cookie: 4, offset: SIZE - 4096, length: 4096 }));
      const ok = await c.reply();
      const data = structured ? (ok as Chunk).payload.subarray(8) : (ok as SimpleReply).data!;
      if (structured) expect((ok as Chunk).type).toBe(RT.OFFSET_DATA);
      expect(data.equals(bytes.subarray(SIZE - 4096))).toBe(true);
      c.close();
    }
  });

  it("unknown commands get EINVAL", async () => {
    const c = await attach();
    c.send(request({ type: 42, cookie: 7, length: 1 }));
    expect(await c.reply()).toMatchObject({ kind: "simple", cookie: 7n, error: ERR.EINVAL });
    c.close();
  });
});

describe("misbehaving peers", () => {
  it("a client that disconnects in the middle of a 32 MiB reply costs only its connection", async () => {
    const c = await attach("cheap");
    const port = c.socket.localPort;
    for (let i = 0; i < 4; i++) c.send(request({ type: CMD.READ, cookie: i, offset: i * 32 * MiB, length: 32 * MiB }));
    await c.until(() => c.reader.pending > 1000, 10_000, "the start of a reply");
    c.close();
    const s = await statsFor((x) => x.client.endsWith(`:${port}`));
    expect(s.export).toBe("cheap");
    await goodRead();
  });

  it("a client that sends requests but never reads replies makes the server stop reading (bounded memory)", async () => {
    const c = await attach("cheap");
    c.socket.pause(); // never read a reply
    const before = cheap.reads;
    const mem0 = process.memoryUsage().arrayBuffers;
    const reqs: Buffer[] = [];
    for (let i = 0; i < 2000; i++) reqs.push(request({ type: CMD.READ, cookie: i, offset: (i % 100) * 32 * MiB, length: 32 * MiB }));
    c.send(Buffer.concat(reqs)); // 2000 × 32 MiB = 62.5 GiB asked for
    await new Promise((r) => setTimeout(r, 1500));
    const issued = cheap.reads - before;
    // 64 MiB of replies in flight plus what the kernel's socket buffers absorb.
    expect(issued).toBeGreaterThanOrEqual(2);
    expect(issued).toBeLessThanOrEqual(8);
    expect(process.memoryUsage().arrayBuffers - mem0).toBeLessThan(200 * MiB);
    await goodRead(); // others are still served meanwhile
    await new Promise((r) => setTimeout(r, 300));
    expect(cheap.reads - before).toBe(issued); // still stopped
    c.close();
  });

  it("200 connections at once are all served, and a libnbd client alongside them", async () => {
    const conns = await Promise.all(Array.from({ length: 200 }, () => attach()));
    const py = pyCase<{ sha: string }>("readall", srv.uri("disk"), SIZE);
    await Promise.all(
      conns.map(async (c, i) => {
        const off = (i * 4096 * 5) % (SIZE - 4096);
        c.reader.expectRead(i, 4096);
        c.send(request({ type: CMD.READ, cookie: i, offset: off, length: 4096 }));
        const r = (await c.reply()) as SimpleReply;
        expect(r.data!.equals(bytes.subarray(off, off + 4096))).toBe(true);
      }),
    );
    expect((await py).sha).toBe(sha256(bytes));
    for (const c of conns) c.send(request({ type: CMD.DISC, cookie: 0 }));
    await Promise.all(conns.map((c) => c.waitClosed()));
  });

  it("connections above --max-connections are closed at once; the others keep working", async () => {
    const small = await startServer({ disk: { device: new MemDevice(bytes) } }, { maxConnections: 2 });
    try {
      const a = await RawClient.connect(small.port);
      const b = await RawClient.connect(small.port);
      await a.raw(18);
      await b.raw(18);
      const c = await RawClient.connect(small.port);
      await c.waitClosed();
      expect(c.reader.pending).toBe(0);
      a.send(clientFlags(3));
      a.send(option(OPT.LIST));
      expect(await a.reply()).toMatchObject({ type: REP.SERVER });
      a.close();
      b.close();
    } finally {
      await small.stop();
    }
  });

  it("a client that sends requests and half-closes still gets every reply, even past the in-flight caps", async () => {
    const dev = new MemDevice(bytes);
    dev.delay = () => 20;
    const s = await startServer({ disk: { device: dev } }, { maxRequestsInFlight: 2 });
    try {
      const c = await RawClient.connect(s.port);
      await c.handshake();
      c.send(option(OPT.GO, goData("disk")));
      for (;;) if (((await c.reply()) as OptReply).type === REP.ACK) break;
      c.reader.phase = "transmission";
      const reqs: Buffer[] = [];
      for (let i = 0; i < 10; i++) {
        c.reader.expectRead(i, 1024);
        reqs.push(request({ type: CMD.READ, cookie: i, offset: i * 1024, length: 1024 }));
      }
      c.socket.end(Buffer.concat(reqs)); // requests, then FIN
      const got = new Set<bigint>();
      for (let i = 0; i < 10; i++) {
        const r = (await c.reply()) as SimpleReply;
        expect(r.error).toBe(0);
        expect(r.data!.equals(bytes.subarray(Number(r.cookie) * 1024, Number(r.cookie) * 1024 + 1024))).toBe(true);
        got.add(r.cookie);
      }
      expect(got.size).toBe(10);
      await c.waitClosed();
    } finally {
      await s.stop();
    }
  });

  it("an idle connection in transmission is kept past the handshake timeout", async () => {
    const c = await attach();
    await new Promise((r) => setTimeout(r, 700));
    expect(c.closed).toBe(false);
    c.reader.expectRead(5, 16);
    c.send(request({ type: CMD.READ, cookie: 5, length: 16 }));
    expect(((await c.reply()) as SimpleReply).data!.equals(bytes.subarray(0, 16))).toBe(true);
    c.close();
  });
});

describe("shutdown", () => {
  it("finishes in-flight replies, then closes; negotiating clients are dropped; new ones refused", async () => {
    const dev = new MemDevice(bytes);
    dev.delay = () => 300;
    const s = await startServer({ disk: { device: dev } });
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.send(option(OPT.GO, goData("disk")));
    for (;;) if (((await c.reply()) as OptReply).type === REP.ACK) break;
    c.reader.phase = "transmission";
    const neg = await RawClient.connect(s.port);
    await neg.raw(18);
    c.reader.expectRead(1, 4096);
    c.send(request({ type: CMD.READ, cookie: 1, offset: 4096, length: 4096 }));
    await new Promise((r) => setTimeout(r, 50)); // the read is now in flight
    const closing = s.stop();
    await neg.waitClosed();
    const r = (await c.reply()) as SimpleReply;
    expect(r.error).toBe(0);
    expect(r.data!.equals(bytes.subarray(4096, 8192))).toBe(true);
    await c.waitClosed();
    await closing;
    await expect(RawClient.connect(s.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
