/**
 * The session's TLS rules (proto.md "TLS support", NBD_OPT_STARTTLS) with byte
 * fixtures: which option gets which reply in each mode, the STARTTLS ordering,
 * clear-text bytes after the ACK, and the negotiated state forgotten after
 * TLS. There is no TLS here: when the session asks for it ("starttls"), the
 * driver calls tlsEstablished() and goes on feeding bytes, as the server does
 * with decrypted ones. Replies are parsed by the test's own codec (proto.ts).
 */
import { describe, expect, it } from "vitest";
import type { ExportCatalog, ExportInfo } from "../../src/nbd/options.ts";
import { Session, type SessionEvent, State } from "../../src/nbd/session.ts";
import { TlsMode } from "../../src/nbd/starttls.ts";
import { CMD, GREETING, OPT, type OptReply, REP, ReplyReader, clientFlags, extRequest, goData, metaData, option, request } from "./helpers/proto.ts";

const SIZE = 1 << 20;
const disk: ExportInfo = { name: "disk", size: SIZE, blockSize: 4096, description: "d" };
const catalog: ExportCatalog = { names: () => ["disk"], lookup: (n) => (n === "" || n === "disk" ? disk : undefined) };

const ERR_POLICY = 0x80000002;
const ERR_TLS_REQD = 0x80000005;
const ERR_INVALID = REP.ERR_INVALID;

interface Run {
  session: Session;
  events: SessionEvent[];
  trace: string[];
  /** Everything sent, greeting included. */
  sent: Buffer;
  /** Bytes sent up to the STARTTLS ACK, i.e. in clear text (all of `sent` if TLS never started). */
  clear: Buffer;
  /** Bytes sent before transmission began. */
  handshake: Buffer;
}

/**
 * Feed `pieces`; when the session emits "starttls", the TLS handshake
 * "happens" (tlsEstablished) unless `noTls`; then the rest is fed.
 */
function drive(mode: TlsMode, pieces: Uint8Array[], opts: { noTls?: boolean; setup?: (s: Session) => void } = {}): Run {
  const session = new Session(catalog, { tls: mode });
  opts.setup?.(session);
  const events: SessionEvent[] = [];
  const out: Buffer[] = [];
  let clear: Buffer | undefined;
  let handshake: Buffer | undefined;
  const drain = () => {
    for (let ev = session.poll(); ev; ev = session.poll()) {
      events.push(ev);
      if (ev.kind === "send") out.push(...ev.data);
      if (ev.kind === "ready") handshake = Buffer.concat(out);
      if (ev.kind === "starttls") {
        clear = Buffer.concat(out);
        if (!opts.noTls) session.tlsEstablished();
      }
    }
  };
  drain();
  for (const p of pieces) {
    session.push(p);
    drain();
  }
  const trace = events.map((e) => JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? `${v}n` : v?.type === "Buffer" ? Buffer.from(v.data).toString("hex") : v)));
  const sent = Buffer.concat(out);
  return { session, events, trace, sent, clear: clear ?? sent, handshake: handshake ?? sent };
}

/** Option replies after the 18-byte greeting. */
function replies(b: Buffer): OptReply[] {
  expect(b.subarray(0, 18)).toEqual(GREETING);
  const r = new ReplyReader();
  r.push(b.subarray(18));
  const all = r.all() as OptReply[];
  expect(r.pending).toBe(0);
  return all;
}

const types = (b: Buffer) => replies(b).map((r) => [r.option, r.type]);
const ends = (run: Run) => run.events.filter((e) => e.kind === "end");
const starttls = option(OPT.STARTTLS);

/** Every option a client may send before TLS, except STARTTLS, ABORT and EXPORT_NAME. */
const OTHERS: [string, Buffer][] = [
  ["LIST", option(OPT.LIST)],
  ["INFO", option(OPT.INFO, goData("disk"))],
  ["INFO of an unknown export", option(OPT.INFO, goData("nope"))],
  ["GO", option(OPT.GO, goData("disk"))],
  ["STRUCTURED_REPLY", option(OPT.STRUCTURED_REPLY)],
  ["LIST_META_CONTEXT", option(OPT.LIST_META, metaData("disk", []))],
  ["SET_META_CONTEXT", option(OPT.SET_META, metaData("disk", ["base:allocation"]))],
  ["EXTENDED_HEADERS", option(OPT.EXTENDED_HEADERS)],
  ["PEEK_EXPORT (withdrawn)", option(4)],
  ["an unknown option", option(42, Buffer.from("junk"))],
  ["option 0xffffffff", option(0xffffffff)],
];

describe("the byte fixtures", () => {
  it("ERR_TLS_REQD and the STARTTLS ACK are exactly these bytes", () => {
    const run = drive(TlsMode.REQUIRE, [clientFlags(3), option(OPT.LIST), starttls]);
    const body = run.sent.subarray(18);
    // magic 0x3e889045565a9 | option 3 (LIST) | ERR_TLS_REQD | length | message
    expect(body.subarray(0, 16).toString("hex")).toBe("0003e889045565a9" + "00000003" + "80000005");
    const len = body.readUInt32BE(16);
    expect(body.subarray(20, 20 + len).toString()).toMatch(/requires TLS/);
    // then: magic | option 5 (STARTTLS) | ACK | length 0
    expect(body.subarray(20 + len).toString("hex")).toBe("0003e889045565a9" + "00000005" + "00000001" + "00000000");
  });
});

describe("require mode (FORCEDTLS)", () => {
  for (const [what, bytes] of OTHERS) {
    it(`${what} before TLS gets NBD_REP_ERR_TLS_REQD and the session goes on`, () => {
      const run = drive(TlsMode.REQUIRE, [Buffer.concat([clientFlags(3), bytes, option(OPT.LIST)])], { noTls: true });
      const opt = bytes.readUInt32BE(8);
      expect(types(run.sent)).toEqual([[opt, ERR_TLS_REQD], [OPT.LIST, ERR_TLS_REQD]]);
      expect(run.session.state).toBe(State.OPTIONS);
      expect(run.events.some((e) => e.kind === "ready" || e.kind === "end")).toBe(false);
    });
  }

  it("no export name or size leaves in clear text, and after TLS the same options succeed", () => {
    const before = Buffer.concat([clientFlags(3), ...OTHERS.map(([, b]) => b)]);
    const after = Buffer.concat([option(OPT.LIST), option(OPT.INFO, goData("disk")), option(OPT.GO, goData("disk"))]);
    const run = drive(TlsMode.REQUIRE, [before, starttls, after]);
    expect(run.clear.includes(Buffer.from("disk"))).toBe(false);
    const all = types(run.sent);
    expect(all.slice(0, OTHERS.length).every(([, t]) => t === ERR_TLS_REQD)).toBe(true);
    expect(all[OTHERS.length]).toEqual([OPT.STARTTLS, REP.ACK]);
    const rest = all.slice(OTHERS.length + 1);
    expect(rest.some(([, t]) => t === ERR_TLS_REQD)).toBe(false); // never after TLS
    expect(rest).toEqual([
      [OPT.LIST, REP.SERVER], [OPT.LIST, REP.ACK],
      [OPT.INFO, REP.INFO], [OPT.INFO, REP.INFO], [OPT.INFO, REP.ACK],
      [OPT.GO, REP.INFO], [OPT.GO, REP.INFO], [OPT.GO, REP.ACK],
    ]);
    expect(run.session.tls).toBe(true);
    expect(run.session.state).toBe(State.TRANSMISSION);
  });

  it("ABORT before TLS is acknowledged and closes", () => {
    const run = drive(TlsMode.REQUIRE, [Buffer.concat([clientFlags(3), option(OPT.ABORT)])]);
    expect(types(run.sent)).toEqual([[OPT.ABORT, REP.ACK]]);
    expect(ends(run)).toEqual([{ kind: "end", hard: false, reason: "NBD_OPT_ABORT" }]);
  });

  it("EXPORT_NAME before TLS is a hard disconnect with nothing sent; after TLS it works", () => {
    const plain = drive(TlsMode.REQUIRE, [Buffer.concat([clientFlags(3), option(OPT.EXPORT_NAME, Buffer.from("disk"))])]);
    expect(plain.sent).toEqual(GREETING);
    expect(ends(plain)).toMatchObject([{ hard: true, reason: expect.stringMatching(/EXPORT_NAME before NBD_OPT_STARTTLS/) }]);
    expect(plain.session.state).toBe(State.DEAD);
    const tls = drive(TlsMode.REQUIRE, [clientFlags(3), starttls, option(OPT.EXPORT_NAME, Buffer.from("disk"))]);
    expect(tls.session.state).toBe(State.TRANSMISSION);
    const reply = tls.sent.subarray(18 + 20); // after the greeting and the STARTTLS ACK
    expect(reply.length).toBe(10); // size + flags, NO_ZEROES kept from the client flags
    expect(reply.readBigUInt64BE(0)).toBe(BigInt(SIZE));
  });

  it("during shutdown STARTTLS gets ERR_SHUTDOWN like every other option", () => {
    const run = drive(TlsMode.REQUIRE, [Buffer.concat([clientFlags(3), starttls])], { setup: (s) => s.shutdown() });
    expect(types(run.sent)).toEqual([[OPT.STARTTLS, REP.ERR_SHUTDOWN]]);
    expect(run.events.some((e) => e.kind === "starttls")).toBe(false);
  });
});

describe("STARTTLS ordering", () => {
  it("the ACK is sent, then the starttls event, and nothing is parsed until tlsEstablished()", () => {
    const run = drive(TlsMode.ON, [clientFlags(3), starttls], { noTls: true });
    expect(run.events.map((e) => e.kind)).toEqual(["send", "send", "starttls"]);
    expect(types(run.sent)).toEqual([[OPT.STARTTLS, REP.ACK]]);
    expect(run.session.state).toBe(State.START_TLS);
    expect(run.session.poll()).toBeUndefined();
    run.session.tlsEstablished();
    run.session.push(option(OPT.LIST));
    const next = [run.session.poll(), run.session.poll()];
    expect(next.map((e) => e?.kind)).toEqual(["send", undefined]);
  });

  it("bytes pipelined behind STARTTLS (sent before its reply) end the session without an ACK", () => {
    // The classic STARTTLS injection: a clear-text command sent with STARTTLS
    // must never be executed as if it came through TLS.
    const run = drive(TlsMode.ON, [Buffer.concat([clientFlags(3), starttls, option(OPT.LIST)])]);
    expect(run.sent).toEqual(GREETING);
    expect(run.events.some((e) => e.kind === "starttls")).toBe(false);
    expect(ends(run)).toMatchObject([{ hard: true, reason: expect.stringMatching(/after NBD_OPT_STARTTLS without waiting/) }]);
  });

  it("clear-text bytes arriving after the ACK, before the handshake, end the session", () => {
    const run = drive(TlsMode.ON, [clientFlags(3), starttls, option(OPT.LIST)], { noTls: true });
    expect(ends(run)).toMatchObject([{ hard: true, reason: expect.stringMatching(/clear-text bytes after NBD_OPT_STARTTLS/) }]);
    expect(run.session.state).toBe(State.DEAD);
    expect(() => run.session.tlsEstablished()).toThrow(/tlsEstablished\(\) in state Dead/);
  });

  it("STARTTLS with data gets ERR_INVALID; a second STARTTLS after TLS gets ERR_INVALID", () => {
    const withData = drive(TlsMode.REQUIRE, [Buffer.concat([clientFlags(3), option(OPT.STARTTLS, Buffer.from("x")), option(OPT.LIST)])], { noTls: true });
    expect(types(withData.sent)).toEqual([[OPT.STARTTLS, ERR_INVALID], [OPT.LIST, ERR_TLS_REQD]]);
    const twice = drive(TlsMode.REQUIRE, [clientFlags(3), starttls, starttls]);
    expect(types(twice.sent)).toEqual([[OPT.STARTTLS, REP.ACK], [OPT.STARTTLS, ERR_INVALID]]);
    expect(twice.events.filter((e) => e.kind === "starttls")).toHaveLength(1);
  });

  it("tlsEstablished() outside START_TLS is an internal error", () => {
    expect(() => new Session(catalog, { tls: TlsMode.ON }).tlsEstablished()).toThrow(/in state AwaitClientFlags/);
  });

  it("every split of the conversation gives the same events", () => {
    const bytes = [Buffer.concat([clientFlags(3), option(OPT.LIST), option(OPT.GO, goData("disk"))]), starttls, Buffer.concat([option(OPT.LIST), option(OPT.GO, goData("disk"))])];
    const whole = drive(TlsMode.REQUIRE, bytes).trace;
    // Bytes may be split anywhere inside each flight; a flight never crosses the STARTTLS boundary.
    bytes.forEach((flight, f) => {
      for (let i = 1; i < flight.length; i++) {
        const pieces = [...bytes.slice(0, f), flight.subarray(0, i), flight.subarray(i), ...bytes.slice(f + 1)];
        expect(drive(TlsMode.REQUIRE, pieces).trace, `flight ${f} split at ${i}`).toEqual(whole);
      }
    });
  });
});

describe("off and on modes", () => {
  it("off (NOTLS): STARTTLS gets ERR_POLICY, nothing else changes, TLS_REQD is never sent", () => {
    const run = drive(TlsMode.OFF, [Buffer.concat([clientFlags(3), starttls, option(OPT.LIST), option(OPT.GO, goData("disk"))])]);
    expect(types(run.sent)).toEqual([[OPT.STARTTLS, ERR_POLICY], [OPT.LIST, REP.SERVER], [OPT.LIST, REP.ACK], [OPT.GO, REP.INFO], [OPT.GO, REP.INFO], [OPT.GO, REP.ACK]]);
    expect(run.session.state).toBe(State.TRANSMISSION);
    expect(run.session.tls).toBe(false);
  });

  it("the default mode is off", () => {
    const s = new Session(catalog);
    s.push(Buffer.concat([clientFlags(3), starttls]));
    const evs = [s.poll(), s.poll()];
    expect(evs[1]?.kind === "send" && evs[1].data[0]!.readUInt32BE(12)).toBe(ERR_POLICY);
  });

  it("on (optional TLS): clear-text clients are served; TLS clients too", () => {
    const plain = drive(TlsMode.ON, [Buffer.concat([clientFlags(3), option(OPT.GO, goData("disk"))])]);
    expect(plain.session.state).toBe(State.TRANSMISSION);
    const tls = drive(TlsMode.ON, [clientFlags(3), starttls, option(OPT.GO, goData("disk"))]);
    expect(tls.session.state).toBe(State.TRANSMISSION);
    expect(tls.session.tls).toBe(true);
  });
});

describe("negotiated state is forgotten after STARTTLS", () => {
  /** GO's NBD_INFO_EXPORT transmission flags, from a run's last INFO reply of type EXPORT. */
  const exportFlags = (run: Run) => {
    const info = replies(run.handshake).filter((r) => r.type === REP.INFO && r.data.readUInt16BE(0) === 0).at(-1)!;
    return info.data.readUInt16BE(10);
  };

  it("structured replies and the meta context: after TLS the client gets simple replies and no SEND_DF", () => {
    const pre = Buffer.concat([clientFlags(3), option(OPT.STRUCTURED_REPLY), option(OPT.SET_META, metaData("disk", ["base:allocation"]))]);
    const control = drive(TlsMode.ON, [pre, option(OPT.GO, goData("disk"))]);
    expect(exportFlags(control) & 0x80).toBe(0x80); // SEND_DF: structured replies are on
    const run = drive(TlsMode.ON, [pre, starttls, option(OPT.GO, goData("disk")), request({ type: CMD.READ, cookie: 7, offset: 0, length: 512 }), request({ type: CMD.BLOCK_STATUS, cookie: 8, offset: 0, length: 4096 })]);
    expect(exportFlags(run) & 0x80).toBe(0);
    expect(run.session.replies.mode).toBe("simple");
    const reqs = run.events.filter((e) => e.kind === "request");
    expect(reqs).toHaveLength(1); // the READ; BLOCK_STATUS has no selected context any more
    const last = run.events.at(-1)!;
    expect(last.kind === "send" && last.data[0]!.subarray(0, 8).toString("hex")).toBe("67446698" + "00000016"); // simple reply, EINVAL
  });

  it("extended headers: after TLS, 28-byte compact requests are read, not 32-byte extended ones", () => {
    const run = drive(TlsMode.ON, [clientFlags(3), option(OPT.EXTENDED_HEADERS), starttls, option(OPT.GO, goData("disk")), request({ type: CMD.READ, cookie: 1, offset: 4096, length: 4096 })]);
    const req = run.events.find((e) => e.kind === "request");
    expect(req).toMatchObject({ req: { cookie: 1n, offset: 4096, length: 4096 } });
    expect(run.session.state).toBe(State.TRANSMISSION);
    // Without the reset the same bytes would be read as an extended request with a bad magic.
    const ext = drive(TlsMode.ON, [clientFlags(3), option(OPT.EXTENDED_HEADERS), option(OPT.GO, goData("disk")), request({ type: CMD.READ, cookie: 1, offset: 4096, length: 4096 }), Buffer.alloc(4)]);
    expect(ends(ext)).toMatchObject([{ hard: true, reason: expect.stringMatching(/bad request magic/) }]);
    expect(extRequest({ type: CMD.READ, cookie: 1 }).length).toBe(32);
  });
});
