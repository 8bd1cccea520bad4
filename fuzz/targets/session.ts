/**
 * Fuzz target: the NBD session state machine (src/nbd/session.ts) fed
 * arbitrary client bytes, alone or after a valid handshake prefix, split into
 * pieces. Shared by the coverage-guided target (`npm run fuzz -- session`) and
 * the fast-check properties in test/nbd/session.test.ts.
 *
 * What must hold for every input (each violation throws, which jazzer reports
 * as a finding):
 *  - the session never throws; poll() ends within a step budget (no hang);
 *  - every byte it sends parses as whole, well-formed NBD replies (the test
 *    client codec in test/nbd/helpers/proto.ts, written from proto.md);
 *  - every request it passes on is inside the export, non-empty, and a READ is
 *    at most 32 MiB;
 *  - once poll() wants more input, at most one incomplete message is buffered
 *    (bounded memory: the server stops reading when its caps are reached);
 *  - after EOF the session has ended exactly once.
 */
import type { ExportCatalog, ExportInfo } from "../../src/nbd/options.ts";
import { DEFAULT_MAX_OPTION_LENGTH, Session, State } from "../../src/nbd/session.ts";
import { MAX_PAYLOAD, NBD_CMD } from "../../src/nbd/wire.ts";
import { CMD, OPT, ReplyReader, clientFlags, extRequest, goData, metaData, option, request } from "../../test/nbd/helpers/proto.ts";

export const EXPORT_SIZE = 1 << 20;
const disk: ExportInfo = { name: "disk", size: EXPORT_SIZE, blockSize: 4096, description: "fuzz" };
const catalog: ExportCatalog = { names: () => ["disk"], lookup: (n) => (n === "" || n === "disk" ? disk : undefined) };

/** Valid conversation openings the fuzzer can start from (selected by the first input byte). */
export const PREFIXES: readonly Buffer[] = [
  Buffer.alloc(0),
  clientFlags(3),
  Buffer.concat([clientFlags(3), option(OPT.GO, goData("disk"))]),
  Buffer.concat([clientFlags(3), option(OPT.STRUCTURED_REPLY), option(OPT.SET_META, metaData("disk", ["base:allocation"])), option(OPT.GO, goData("disk"))]),
  Buffer.concat([clientFlags(3), option(OPT.EXTENDED_HEADERS), option(OPT.SET_META, metaData("", ["base:allocation"])), option(OPT.GO, goData(""))]),
  Buffer.concat([clientFlags(1), option(OPT.EXPORT_NAME, Buffer.from("disk"))]),
];

/** A small option cap so "oversized option" paths are reachable by short inputs too. */
const SMALL_MAX_OPTION = 256;

export interface SessionRun {
  events: number;
  requests: number;
  sentBytes: number;
  state: State;
}

function fail(why: string): never {
  throw new Error(`session invariant violated: ${why}`);
}

/** Largest input a session may hold once poll() returned undefined, per state. */
function bufferBound(state: State, maxOption: number): number {
  switch (state) {
    case State.AWAIT_CLIENT_FLAGS:
      return 4;
    case State.OPTIONS:
      return 16 + maxOption; // one option header + its data
    case State.TRANSMISSION:
      return 32; // one (extended) request header; WRITE payloads are skipped, not kept
    default:
      return Number.POSITIVE_INFINITY; // ended: input is ignored
  }
}

/**
 * Run one conversation: `pieces` are pushed one at a time, polling after
 * each; then EOF. Throws an Error naming the broken invariant.
 */
export function exerciseSession(pieces: readonly Uint8Array[], opts: { maxOptionLength?: number; shutdownAfter?: number } = {}): SessionRun {
  const maxOption = opts.maxOptionLength ?? DEFAULT_MAX_OPTION_LENGTH;
  const s = new Session(catalog, { maxOptionLength: maxOption });
  const total = pieces.reduce((n, p) => n + p.length, 0);
  // Every event but the greeting, "ready" and "end" consumes at least 4 input bytes.
  const budget = 8 + total;
  const reader = new ReplyReader();
  let events = 0;
  let requests = 0;
  let sentBytes = 0;
  let ends = 0;
  let greeted = false;
  let pushed = 0;

  const take = (ev: ReturnType<Session["poll"]>): void => {
    if (!ev) return;
    if (++events > budget) fail(`more than ${budget} events for ${total} input bytes (a loop)`);
    switch (ev.kind) {
      case "send": {
        if (ev.data.length === 0) fail("empty send event");
        let bytes = Buffer.concat(ev.data);
        sentBytes += bytes.length;
        if (!greeted) {
          greeted = true;
          if (bytes.length !== 18) fail(`greeting of ${bytes.length} bytes`);
          return;
        }
        if (reader.phase === "options" && bytes.length >= 8 && bytes.readBigUInt64BE(0) !== 0x3e889045565a9n) {
          // NBD_OPT_EXPORT_NAME's reply: size, flags, optional 124 zero bytes; transmission follows.
          if (bytes.length !== 10 && bytes.length !== 134) fail(`EXPORT_NAME reply of ${bytes.length} bytes`);
          if (bytes.readBigUInt64BE(0) !== BigInt(EXPORT_SIZE)) fail("EXPORT_NAME reply with the wrong size");
          bytes = Buffer.alloc(0);
        }
        reader.push(bytes);
        try {
          reader.all();
        } catch (e) {
          fail(`malformed reply bytes: ${(e as Error).message}`);
        }
        if (reader.pending !== 0) fail(`a send event ended inside a reply (${reader.pending} bytes left)`);
        return;
      }
      case "ready":
        if (reader.phase !== "options") fail("ready twice");
        reader.phase = "transmission";
        return;
      case "request": {
        requests++;
        const r = ev.req;
        if (!(Number.isSafeInteger(r.offset) && Number.isSafeInteger(r.length) && r.offset >= 0 && r.length >= 1)) fail(`request range ${r.offset}+${r.length}`);
        if (r.offset + r.length > EXPORT_SIZE) fail(`request past the end: ${r.offset}+${r.length}`);
        if (r.type === NBD_CMD.READ && r.length > MAX_PAYLOAD) fail(`READ of ${r.length} bytes`);
        if (BigInt(r.offset) !== r.rawOffset) fail("rawOffset differs from offset");
        if (s.state !== State.TRANSMISSION) fail(`request event in state ${s.state}`);
        return;
      }
      case "end":
        ends++;
        return;
    }
  };

  const drain = (): void => {
    for (let ev = s.poll(); ev; ev = s.poll()) take(ev);
    if (s.buffered > bufferBound(s.state, maxOption)) fail(`${s.buffered} bytes buffered in ${s.state}`);
  };

  drain();
  for (const p of pieces) {
    s.push(p);
    pushed += p.length;
    if (opts.shutdownAfter !== undefined && pushed >= opts.shutdownAfter) s.shutdown();
    drain();
  }
  take(s.eof());
  if (ends < 1) fail("no end event after EOF");
  const endedStates: State[] = [State.CLOSED, State.DEAD];
  if (!endedStates.includes(s.state)) fail(`state ${s.state} after EOF`);
  if (s.poll() !== undefined) fail("events after the end");
  return { events, requests, sentBytes, state: s.state };
}

/**
 * Input layout for the coverage-guided target:
 *   byte 0: prefix (PREFIXES, mod) | bit 7: small option cap | bit 6: shutdown halfway
 *   byte 1: piece size (0 = everything in one push)
 *   rest:   client bytes after the prefix
 */
export function decodeInput(data: Uint8Array): { pieces: Uint8Array[]; maxOptionLength?: number; shutdownAfter?: number } {
  if (data.length < 2) return { pieces: [data] };
  const sel = data[0]!;
  const prefix = PREFIXES[(sel & 0x3f) % PREFIXES.length]!;
  const piece = data[1]!;
  const body = Buffer.concat([prefix, data.subarray(2)]);
  const pieces: Uint8Array[] = [];
  if (piece === 0) pieces.push(body);
  else for (let i = 0; i < body.length; i += piece) pieces.push(body.subarray(i, i + piece));
  return {
    pieces,
    maxOptionLength: sel & 0x80 ? SMALL_MAX_OPTION : undefined,
    shutdownAfter: sel & 0x40 ? prefix.length + Math.floor((body.length - prefix.length) / 2) : undefined,
  };
}

export function fuzz(data: Buffer): void {
  const { pieces, ...opts } = decodeInput(data);
  exerciseSession(pieces, opts);
}

/** Seed inputs: each prefix followed by a few valid and invalid requests/options. */
export function seeds(): Array<[string, Buffer]> {
  const reqs = Buffer.concat([
    request({ type: CMD.READ, cookie: 1, offset: 4096, length: 512 }),
    request({ type: CMD.READ, cookie: 2, offset: EXPORT_SIZE - 1, length: 2 }),
    request({ type: CMD.WRITE, cookie: 3, length: 8, payload: Buffer.alloc(8) }),
    request({ type: CMD.BLOCK_STATUS, cookie: 4, length: 4096, flags: 8 }),
    request({ type: CMD.FLUSH, cookie: 5 }),
    request({ type: CMD.CACHE, cookie: 6, length: 4096 }),
    request({ type: 9, cookie: 7 }),
    request({ type: CMD.DISC, cookie: 8 }),
  ]);
  const ext = Buffer.concat([
    extRequest({ type: CMD.READ, cookie: 1, offset: 8192, length: 4096 }),
    extRequest({ type: CMD.WRITE, cookie: 2, flags: 32, length: 8, payload: Buffer.alloc(8) }),
    extRequest({ type: CMD.BLOCK_STATUS, cookie: 3, length: 2n ** 40n }),
    extRequest({ type: CMD.DISC, cookie: 4 }),
  ]);
  const opts = Buffer.concat([
    option(OPT.LIST),
    option(OPT.INFO, goData("disk", [0, 1, 2, 3])),
    option(OPT.LIST_META, metaData("disk", ["base:"])),
    option(42, Buffer.from("x")),
    option(OPT.ABORT),
  ]);
  return [
    ["handshake-options", Buffer.concat([Buffer.from([1, 0]), opts])],
    ["simple-requests", Buffer.concat([Buffer.from([2, 0]), reqs])],
    ["structured-requests", Buffer.concat([Buffer.from([3, 7]), reqs])],
    ["extended-requests", Buffer.concat([Buffer.from([4, 0]), ext])],
    ["export-name", Buffer.concat([Buffer.from([5, 3]), reqs])],
    ["oversized-option", Buffer.concat([Buffer.from([0x81, 0]), Buffer.from(option(OPT.GO, Buffer.alloc(300)))])],
    ["shutdown", Buffer.concat([Buffer.from([0x42, 0]), reqs])],
  ];
}
