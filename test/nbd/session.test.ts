import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import type { ExportCatalog, ExportInfo } from "../../src/nbd/options.ts";
import { Session, type SessionEvent, State } from "../../src/nbd/session.ts";
import {
  Bytes,
  CMD,
  CMDF,
  type Chunk,
  ERR,
  GREETING,
  OPT,
  type OptReply,
  REP,
  RT,
  type Reply,
  ReplyReader,
  clientFlags,
  errorChunk,
  extRequest,
  goData,
  metaData,
  option,
  request,
} from "./helpers/proto.ts";
import { decodeInput, exerciseSession, seeds as conversationSeeds } from "../../fuzz/targets/session.ts";
import { mutated } from "../helpers/mutate.ts";

const SIZE = 1 << 20;
const disk: ExportInfo = { name: "disk", size: SIZE, blockSize: 4096, description: "d" };
const catalog: ExportCatalog = { names: () => ["disk"], lookup: (n) => (n === "" || n === "disk" ? disk : undefined) };

interface Run {
  /** Every event, serialisable, for comparing runs. */
  trace: string[];
  events: SessionEvent[];
  /** Bytes sent before / after the "ready" event. */
  handshake: Buffer;
  transmission: Buffer;
  session: Session;
}

/** Feed `pieces` one at a time, polling after each; then EOF if asked. */
function drive(pieces: Uint8Array[], opts: { eof?: boolean; setup?: (s: Session) => void } = {}): Run {
  const session = new Session(catalog);
  opts.setup?.(session);
  const events: SessionEvent[] = [];
  const hs: Buffer[] = [];
  const tx: Buffer[] = [];
  let ready = false;
  const collect = (ev: SessionEvent) => {
    events.push(ev);
    if (ev.kind === "send") (ready ? tx : hs).push(...ev.data);
    if (ev.kind === "ready") ready = true;
  };
  const drain = () => {
    for (let ev = session.poll(); ev; ev = session.poll()) collect(ev);
  };
  drain();
  for (const p of pieces) {
    session.push(p);
    drain();
  }
  if (opts.eof) collect(session.eof());
  const trace = events.map((e) =>
    JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? `${v}n` : v?.type === "Buffer" ? Buffer.from(v.data).toString("hex") : v)),
  );
  return { trace, events, handshake: Buffer.concat(hs), transmission: Buffer.concat(tx), session };
}

/** The same conversation must give the same events however the bytes are split. */
function expectSplitInvariant(bytes: Buffer, eof = false): Run {
  const whole = drive([bytes], { eof });
  for (let i = 1; i < bytes.length; i++) {
    const split = drive([bytes.subarray(0, i), bytes.subarray(i)], { eof });
    expect(split.trace, `split at byte ${i}`).toEqual(whole.trace);
  }
  const bytewise = drive(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)), { eof });
  expect(bytewise.trace, "one byte at a time").toEqual(whole.trace);
  return whole;
}

function optReplies(b: Buffer): OptReply[] {
  expect(b.subarray(0, 18)).toEqual(GREETING);
  const r = new ReplyReader();
  r.push(b.subarray(18));
  const out = r.all() as OptReply[];
  expect(r.pending).toBe(0);
  return out;
}

function txReplies(b: Buffer, reads: [number, number][] = []): Reply[] {
  const r = new ReplyReader();
  r.phase = "transmission";
  for (const [c, n] of reads) r.expectRead(c, n);
  r.push(b);
  const out = r.all();
  expect(r.pending).toBe(0);
  return out;
}

const requests = (run: Run) => run.events.flatMap((e) => (e.kind === "request" ? [e.req] : []));
const ends = (run: Run) => run.events.filter((e) => e.kind === "end");
const simpleErrors = (rs: Reply[]) => rs.map((r) => (r.kind === "simple" ? [Number(r.cookie), r.error] : ["chunk", Number((r as Chunk).cookie)]));

describe("handshake", () => {
  it("greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE|NO_ZEROES before reading anything", () => {
    const run = drive([]);
    expect(run.handshake).toEqual(GREETING);
    expect(run.session.state).toBe(State.AWAIT_CLIENT_FLAGS);
  });

  it("LIST, INFO of an unknown export, INFO, then ABORT: every split gives the same replies", () => {
    const bytes = Buffer.concat([clientFlags(3), option(OPT.LIST), option(OPT.INFO, goData("zzz")), option(OPT.INFO, goData("disk", [1])), option(OPT.ABORT)]);
    const run = expectSplitInvariant(bytes);
    const reps = optReplies(run.handshake);
    expect(reps.map((r) => [r.option, r.type])).toEqual([
      [OPT.LIST, REP.SERVER], [OPT.LIST, REP.ACK],
      [OPT.INFO, REP.ERR_UNKNOWN],
      [OPT.INFO, REP.INFO], [OPT.INFO, REP.INFO], [OPT.INFO, REP.INFO], [OPT.INFO, REP.ACK],
      [OPT.ABORT, REP.ACK],
    ]);
    expect(ends(run)).toEqual([{ kind: "end", hard: false, reason: "NBD_OPT_ABORT" }]);
    expect(run.session.state).toBe(State.CLOSED);
  });

  it("unknown options get ERR_UNSUP and the next option still parses", () => {
    const run = expectSplitInvariant(Buffer.concat([clientFlags(1), option(42, Buffer.from("junk data")), option(OPT.GO, goData(""))]));
    expect(optReplies(run.handshake).map((r) => r.type)).toEqual([REP.ERR_UNSUP, REP.INFO, REP.INFO, REP.ACK]);
    expect(run.events.find((e) => e.kind === "ready")).toEqual({ kind: "ready", export: disk });
  });

  it("EXPORT_NAME answers size, flags and 124 zero bytes, or none with NO_ZEROES", () => {
    for (const [flags, pad] of [[1, 124], [3, 0]] as const) {
      const run = expectSplitInvariant(Buffer.concat([clientFlags(flags), option(OPT.EXPORT_NAME, Buffer.from("disk"))]));
      const reply = run.handshake.subarray(18);
      expect(reply.length).toBe(10 + pad);
      expect(reply.readBigUInt64BE(0)).toBe(BigInt(SIZE));
      expect(reply.readUInt16BE(8)).toBe(0x507); // no SEND_DF without structured replies
      expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
      expect(run.session.state).toBe(State.TRANSMISSION);
    }
  });

  it("EXPORT_NAME of an unknown export is a hard disconnect (it cannot carry an error)", () => {
    const run = drive([Buffer.concat([clientFlags(3), option(OPT.EXPORT_NAME, Buffer.from("nope"))])]);
    expect(run.handshake).toEqual(GREETING);
    expect(ends(run)).toMatchObject([{ hard: true }]);
    expect(run.session.state).toBe(State.DEAD);
  });

  it("refuses unknown client flags, clients without FIXED_NEWSTYLE and garbage", () => {
    for (const bytes of [clientFlags(4 | 1), clientFlags(0), clientFlags(2), Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]) {
      const run = drive([bytes]);
      expect(run.handshake).toEqual(GREETING);
      expect(ends(run)).toMatchObject([{ kind: "end", hard: true }]);
      expect(run.session.state).toBe(State.DEAD);
    }
  });

  it("a bad option magic is a hard disconnect", () => {
    const bad = Buffer.concat([clientFlags(3), new Bytes().u64(0x1122334455667788n).u32(OPT.GO).u32(0).build()]);
    const run = expectSplitInvariant(bad);
    expect(ends(run)).toMatchObject([{ hard: true, reason: "bad option magic 0x1122334455667788" }]);
  });

  it("an option length of 4 GiB - 1 is refused with ERR_TOO_BIG before any data is buffered", () => {
    const head = Buffer.concat([clientFlags(3), new Bytes().u64(0x49484156454f5054n).u32(OPT.GO).u32(0xffffffff).build()]);
    const run = drive([head, Buffer.alloc(1000, 0x55)]);
    expect(optReplies(run.handshake).map((r) => r.type)).toEqual([REP.ERR_TOO_BIG]);
    expect(ends(run)).toMatchObject([{ hard: true }]);
    expect(run.session.buffered).toBe(0); // input after the verdict is not kept
    // EXPORT_NAME has no reply packet: just the disconnect.
    const en = drive([Buffer.concat([clientFlags(3), new Bytes().u64(0x49484156454f5054n).u32(OPT.EXPORT_NAME).u32(1 << 30).build()])]);
    expect(en.handshake).toEqual(GREETING);
    expect(ends(en)).toMatchObject([{ hard: true }]);
  });

  it("EOF on a message boundary closes; EOF inside an option is an error", () => {
    const ok = drive([Buffer.concat([clientFlags(3), option(OPT.LIST)])], { eof: true });
    expect(ends(ok)).toEqual([{ kind: "end", hard: false, reason: "EOF in Options" }]);
    const truncated = option(OPT.GO, goData("disk")).subarray(0, 20);
    for (let i = 1; i <= truncated.length; i++) {
      const run = drive([clientFlags(3), truncated.subarray(0, i)], { eof: true });
      expect(ends(run), `cut at ${i}`).toMatchObject([{ hard: true }]);
      expect(optReplies(run.handshake)).toEqual([]);
    }
  });

  it("during shutdown options get ERR_SHUTDOWN and EXPORT_NAME is refused", () => {
    const run = drive([Buffer.concat([clientFlags(3), option(OPT.GO, goData("disk")), option(OPT.EXPORT_NAME)])], { setup: (s) => s.shutdown() });
    expect(optReplies(run.handshake).map((r) => r.type)).toEqual([REP.ERR_SHUTDOWN]);
    expect(ends(run)).toMatchObject([{ hard: true, reason: "server is shutting down" }]);
  });
});

const goSimple = Buffer.concat([clientFlags(3), option(OPT.GO, goData("disk"))]);
const goStructured = Buffer.concat([
  clientFlags(3), option(OPT.STRUCTURED_REPLY), option(OPT.SET_META, metaData("disk", ["base:allocation"])), option(OPT.GO, goData("disk")),
]);
const goExtended = Buffer.concat([
  clientFlags(3), option(OPT.EXTENDED_HEADERS), option(OPT.SET_META, metaData("", ["base:allocation"])), option(OPT.GO, goData("")),
]);

describe("transmission, simple replies", () => {
  it("passes valid READs on and answers every bad request itself, in any split", () => {
    const bytes = Buffer.concat([
      goSimple,
      request({ type: CMD.READ, cookie: 1, offset: 4096, length: 512 }),
      request({ type: CMD.READ, cookie: 2, offset: SIZE - 1, length: 2 }), // past the end
      request({ type: CMD.READ, cookie: 3, offset: 0, length: 0 }), // zero length
      request({ type: CMD.READ, cookie: 4, offset: 0, length: 0xffffffff }), // 4 GiB
      request({ type: CMD.READ, cookie: 5, flags: CMDF.DF, length: 512 }), // DF without structured replies
      request({ type: CMD.WRITE, cookie: 6, offset: 0, length: 10, payload: Buffer.alloc(10, 0xaa) }),
      request({ type: CMD.TRIM, cookie: 7, length: 4096 }),
      request({ type: CMD.WRITE_ZEROES, cookie: 8, length: 4096, flags: CMDF.NO_HOLE }),
      request({ type: CMD.WRITE_ZEROES, cookie: 9, length: 4096, flags: CMDF.FAST_ZERO }),
      request({ type: CMD.FLUSH, cookie: 10 }),
      request({ type: CMD.FLUSH, cookie: 11, length: 1 }),
      request({ type: CMD.CACHE, cookie: 12, offset: 0, length: SIZE }),
      request({ type: CMD.BLOCK_STATUS, cookie: 13, length: 4096 }), // no meta context
      request({ type: 9, cookie: 14 }),
      request({ type: CMD.READ, cookie: 15, offset: 2n ** 64n - 512n, length: 1024 }), // offset overflow
      request({ type: CMD.DISC, cookie: 16 }),
      request({ type: CMD.READ, cookie: 17, length: 1 }), // after DISC: ignored
    ]);
    const run = expectSplitInvariant(bytes);
    expect(requests(run).map((r) => [r.type, Number(r.cookie), r.offset, r.length])).toEqual([
      [CMD.READ, 1, 4096, 512],
      [CMD.CACHE, 12, 0, SIZE],
    ]);
    expect(simpleErrors(txReplies(run.transmission))).toEqual([
      [2, ERR.EINVAL], [3, ERR.EINVAL], [4, ERR.EINVAL], [5, ERR.EINVAL], [6, ERR.EPERM], [7, ERR.EPERM], [8, ERR.EPERM],
      [9, ERR.EINVAL], [10, 0], [11, ERR.EINVAL], [13, ERR.EINVAL], [14, ERR.EINVAL], [15, ERR.EINVAL],
    ]);
    expect(ends(run)).toEqual([{ kind: "end", hard: false, reason: "NBD_CMD_DISC" }]);
    expect(run.session.replies.mode).toBe("simple");
  });

  it("a request with bad magic is a hard disconnect", () => {
    const bad = Buffer.from(request({ type: CMD.READ, cookie: 1, length: 1 }));
    bad.writeUInt32BE(0x25609514, 0);
    const run = expectSplitInvariant(Buffer.concat([goSimple, bad]));
    expect(ends(run)).toMatchObject([{ hard: true, reason: "bad request magic 0x25609514, expected 0x25609513" }]);
  });

  it("a WRITE payload above 32 MiB is a hard disconnect; a smaller one is consumed without buffering", () => {
    const big = drive([goSimple, request({ type: CMD.WRITE, cookie: 1, length: 32 * 1024 * 1024 + 1 })]);
    expect(ends(big)).toMatchObject([{ hard: true }]);
    const s = drive([goSimple, request({ type: CMD.WRITE, cookie: 1, length: 1 << 20 })]);
    for (let i = 0; i < 15; i++) {
      s.session.push(Buffer.alloc(65536));
      expect(s.session.poll()).toBeUndefined();
      expect(s.session.buffered).toBe(0);
    }
    s.session.push(Buffer.concat([Buffer.alloc(65536), request({ type: CMD.FLUSH, cookie: 2 })]));
    const evs = [s.session.poll(), s.session.poll()];
    expect(simpleErrors(txReplies(Buffer.concat(evs.flatMap((e) => (e?.kind === "send" ? e.data : [])))))).toEqual([[1, ERR.EPERM], [2, 0]]);
  });

  it("EOF inside a request or a write payload is an error; between requests it is not", () => {
    expect(ends(drive([goSimple, request({ type: CMD.READ, cookie: 1, length: 1 }).subarray(0, 27)], { eof: true }))).toMatchObject([{ hard: true }]);
    expect(ends(drive([goSimple, request({ type: CMD.WRITE, cookie: 1, length: 9, payload: Buffer.alloc(8) })], { eof: true }))).toMatchObject([{ hard: true }]);
    expect(ends(drive([goSimple], { eof: true }))).toEqual([{ kind: "end", hard: false, reason: "EOF in Transmission" }]);
  });

  it("during shutdown requests get ESHUTDOWN", () => {
    const run = drive([goSimple]);
    run.session.shutdown();
    run.session.push(request({ type: CMD.READ, cookie: 5, length: 512 }));
    const ev = run.session.poll();
    expect(ev?.kind).toBe("send");
    expect(simpleErrors(txReplies(Buffer.concat(ev!.kind === "send" ? ev!.data : [])))).toEqual([[5, ERR.ESHUTDOWN]]);
  });
});

describe("transmission, structured replies", () => {
  it("advertises SEND_DF, accepts DF and BLOCK_STATUS, and answers errors with ERROR chunks", () => {
    const bytes = Buffer.concat([
      goStructured,
      request({ type: CMD.READ, cookie: 1, flags: CMDF.DF, offset: 0, length: 65536 }),
      request({ type: CMD.BLOCK_STATUS, cookie: 2, flags: CMDF.REQ_ONE, offset: 512, length: 4096 }),
      request({ type: CMD.READ, cookie: 3, flags: CMDF.FUA, length: 1 }), // FUA not advertised
      request({ type: CMD.READ, cookie: 4, offset: SIZE, length: 1 }),
      request({ type: CMD.FLUSH, cookie: 5 }),
      request({ type: CMD.CACHE, cookie: 6, flags: CMDF.DF, length: 1 }),
    ]);
    const run = expectSplitInvariant(bytes);
    const info = optReplies(run.handshake).filter((r) => r.type === REP.INFO && r.data.readUInt16BE(0) === 0);
    expect(info[0]!.data.readUInt16BE(10) & 0x80).toBe(0x80);
    expect(requests(run).map((r) => [r.type, r.flags, Number(r.cookie)])).toEqual([[CMD.READ, CMDF.DF, 1], [CMD.BLOCK_STATUS, CMDF.REQ_ONE, 2]]);
    const reps = txReplies(run.transmission);
    expect(reps.map((r) => [r.kind, Number((r as Chunk).cookie)])).toEqual([["chunk", 3], ["chunk", 4], ["simple", 5], ["chunk", 6]]);
    for (const c of reps.filter((r): r is Chunk => r.kind === "chunk")) {
      expect(c.type).toBe(RT.ERROR);
      expect(c.flags).toBe(1);
      expect(errorChunk(c).error).toBe(ERR.EINVAL);
    }
    expect(run.session.replies.mode).toBe("structured");
  });

  it("BLOCK_STATUS is refused when the meta context was set for another export name", () => {
    const cat2: ExportCatalog = { names: () => ["disk", "b"], lookup: (n) => (n === "b" ? { ...disk, name: "b" } : catalog.lookup(n)) };
    const s = new Session(cat2);
    s.push(Buffer.concat([clientFlags(3), option(OPT.STRUCTURED_REPLY), option(OPT.SET_META, metaData("b", ["base:allocation"])), option(OPT.GO, goData("disk"))]));
    s.push(request({ type: CMD.BLOCK_STATUS, cookie: 1, length: 4096 }));
    const evs: SessionEvent[] = [];
    for (let e = s.poll(); e; e = s.poll()) evs.push(e);
    const last = evs.at(-1)!;
    expect(last.kind).toBe("send");
    const [c] = txReplies(Buffer.concat(last.kind === "send" ? last.data : [])) as Chunk[];
    expect(errorChunk(c!).error).toBe(ERR.EINVAL);
  });
});

describe("transmission, extended headers", () => {
  it("parses 32-byte requests with 64-bit lengths and payloads, answering with 32-byte chunks", () => {
    const bytes = Buffer.concat([
      goExtended,
      extRequest({ type: CMD.READ, cookie: 1, offset: 8192, length: 4096 }),
      extRequest({ type: CMD.READ, cookie: 2, offset: 0, length: 2n ** 32n }), // 4 GiB effect length
      extRequest({ type: CMD.BLOCK_STATUS, cookie: 3, offset: 0, length: SIZE }),
      extRequest({ type: CMD.BLOCK_STATUS, cookie: 4, offset: 0, length: 2n ** 40n }), // beyond the end
      extRequest({ type: CMD.WRITE, cookie: 5, flags: CMDF.PAYLOAD_LEN, length: 100, payload: Buffer.alloc(100, 1) }),
      extRequest({ type: CMD.WRITE, cookie: 6, length: 100 }), // WRITE MUST use PAYLOAD_LEN
      extRequest({ type: CMD.READ, cookie: 7, flags: CMDF.PAYLOAD_LEN, length: 8, payload: Buffer.alloc(8, 2) }),
      extRequest({ type: CMD.FLUSH, cookie: 8 }),
      extRequest({ type: CMD.CACHE, cookie: 9, offset: 4096, length: 4096 }),
      extRequest({ type: CMD.DISC, cookie: 10 }),
    ]);
    const run = expectSplitInvariant(bytes);
    expect(requests(run).map((r) => [r.type, Number(r.cookie), r.offset, r.length, r.rawOffset])).toEqual([
      [CMD.READ, 1, 8192, 4096, 8192n],
      [CMD.BLOCK_STATUS, 3, 0, SIZE, 0n],
      [CMD.CACHE, 9, 4096, 4096, 4096n],
    ]);
    const reps = txReplies(run.transmission) as Chunk[];
    expect(reps.every((r) => r.kind === "chunk" && r.reqOffset !== undefined && r.flags === 1)).toBe(true);
    expect(reps.map((r) => [Number(r.cookie), r.type, r.type === RT.NONE ? 0 : errorChunk(r).error])).toEqual([
      [2, RT.ERROR, ERR.EINVAL], [4, RT.ERROR, ERR.EINVAL], [5, RT.ERROR, ERR.EPERM], [6, RT.ERROR, ERR.EINVAL], [7, RT.ERROR, ERR.EINVAL], [8, RT.NONE, 0],
    ]);
    expect(run.session.replies.mode).toBe("extended");
  });

  it("a compact request after extended headers is a bad magic; EXPORT_NAME after them is refused", () => {
    expect(ends(drive([goExtended, request({ type: CMD.READ, cookie: 1, length: 1 }), Buffer.alloc(4)]))).toMatchObject([{ hard: true }]);
    expect(ends(drive([Buffer.concat([clientFlags(3), option(OPT.EXTENDED_HEADERS), option(OPT.EXPORT_NAME)])]))).toMatchObject([{ hard: true }]);
  });
});

describe("robustness", () => {
  const prefixes = { handshake: clientFlags(3), simple: goSimple, structured: goStructured, extended: goExtended };
  for (const [name, prefix] of Object.entries(prefixes)) {
    fcTest.prop([fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(64), { maxLength: 8 })], { numRuns: 200 })(
      `random bytes after ${name} never throw; the session answers or ends`,
      (junk, cuts) => {
        const pieces: Uint8Array[] = [prefix];
        let pos = 0;
        for (const c of cuts) {
          pieces.push(junk.subarray(pos, pos + c));
          pos += c;
        }
        pieces.push(junk.subarray(pos));
        const run = drive(pieces, { eof: true });
        for (const e of run.events) expect(["send", "ready", "request", "end"]).toContain(e.kind);
        expect(ends(run).length).toBeGreaterThanOrEqual(1);
        for (const r of requests(run)) {
          expect(r.length).toBeGreaterThan(0);
          expect(r.offset + r.length).toBeLessThanOrEqual(SIZE);
        }
      },
    );
  }

  // The invariants (fuzz/targets/session.ts exerciseSession): no exception, bounded steps, every byte sent parses as
  // whole replies, requests inside the export, at most one message buffered once poll() wants input, one end after EOF.
  const conversations = conversationSeeds().map(([, b]) => b);
  const resplit = (input: Uint8Array, cuts: number[]) => {
    const { pieces, ...opts } = decodeInput(input);
    const whole = Buffer.concat(pieces);
    const out: Uint8Array[] = [];
    let pos = 0;
    for (const c of cuts) out.push(whole.subarray(pos, (pos += c)));
    out.push(whole.subarray(pos));
    return { pieces: out, opts };
  };
  fcTest.prop([fc.constantFrom(...conversations).chain((b) => mutated(b)), fc.array(fc.nat(48), { maxLength: 6 })], { numRuns: 500 })(
    "mutated valid conversations (truncations, bit flips, splices, huge lengths) keep every session invariant",
    (input, cuts) => {
      const { pieces, opts } = resplit(input, cuts);
      const run = exerciseSession(pieces, opts);
      expect([State.CLOSED, State.DEAD]).toContain(run.state);
    },
  );

  it("a 4 GiB option length or WRITE payload is never buffered: the session holds at most one header", () => {
    const hugeOption = Buffer.concat([clientFlags(3), Buffer.from(option(OPT.GO).subarray(0, 12)), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(1 << 16)]);
    expect(exerciseSession([hugeOption]).state).toBe(State.DEAD);
    const s = new Session(catalog);
    s.push(goExtended);
    for (let e = s.poll(); e; e = s.poll());
    s.push(extRequest({ type: CMD.WRITE, cookie: 1, flags: CMDF.PAYLOAD_LEN, length: 1 << 20 }));
    for (let i = 0; i < 64; i++) {
      s.push(Buffer.alloc(16 * 1024)); // payload arriving: skipped as it comes, never kept
      for (let e = s.poll(); e; e = s.poll());
      expect(s.buffered).toBe(0);
    }
  });
});
