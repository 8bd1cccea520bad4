import { describe, expect, it } from "vitest";
import { type ExportCatalog, type ExportInfo, type Negotiated, handleOption, preferredBlockSize, transmissionFlags } from "../../src/nbd/options.ts";
import { Bytes, OPT, REP, ReplyReader, type OptReply, goData, metaData } from "./helpers/proto.ts";

const disk: ExportInfo = { name: "disk", size: 1 << 20, blockSize: 4096, description: "a test disk" };
const other: ExportInfo = { name: "other", size: 8192, blockSize: 4096 };
const catalog: ExportCatalog = {
  names: () => ["disk", "other"],
  lookup: (n) => (n === "" || n === "disk" ? disk : n === "other" ? other : undefined),
};

function neg(over: Partial<Negotiated> = {}): Negotiated {
  return { structured: false, extended: false, metaExport: undefined, shuttingDown: false, ...over };
}

function run(n: Negotiated, option: number, data: Buffer = Buffer.alloc(0)) {
  const out = handleOption(n, catalog, option, data);
  const r = new ReplyReader();
  for (const b of out.replies) r.push(b);
  const replies = r.all() as OptReply[];
  expect(r.pending).toBe(0);
  for (const rep of replies) expect(rep.option).toBe(option);
  return { ...out, replies };
}

/** INFO replies by info type. */
function infos(replies: OptReply[]): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const r of replies) if (r.type === REP.INFO) m.set(r.data.readUInt16BE(0), r.data.subarray(2));
  return m;
}

describe("NBD_OPT_LIST", () => {
  it("sends one NBD_REP_SERVER per export (name, then description) and an ACK", () => {
    const { replies } = run(neg(), OPT.LIST);
    expect(replies.map((r) => r.type)).toEqual([REP.SERVER, REP.SERVER, REP.ACK]);
    const first = replies[0]!.data;
    expect(first.readUInt32BE(0)).toBe(4);
    expect(first.subarray(4, 8).toString()).toBe("disk");
    expect(first.subarray(8).toString()).toBe("a test disk");
    expect(replies[1]!.data).toEqual(new Bytes().u32(5).str("other").build());
  });
  it("refuses data with ERR_INVALID", () => {
    expect(run(neg(), OPT.LIST, Buffer.from("x")).replies.map((r) => r.type)).toEqual([REP.ERR_INVALID]);
  });
});

describe("NBD_OPT_INFO and NBD_OPT_GO", () => {
  it("answer INFO_EXPORT, requested NAME/DESCRIPTION, BLOCK_SIZE, then ACK", () => {
    for (const option of [OPT.INFO, OPT.GO]) {
      const out = run(neg(), option, goData("", [1, 2, 3]));
      expect(out.replies.at(-1)!.type).toBe(REP.ACK);
      const m = infos(out.replies);
      expect(m.get(0)).toEqual(new Bytes().u64(1 << 20).u16(0x103 | 0x404).build()); // HAS_FLAGS READ_ONLY FLUSH MULTI_CONN CACHE
      expect(m.get(1)!.toString()).toBe("disk");
      expect(m.get(2)!.toString()).toBe("a test disk");
      expect(m.get(3)).toEqual(new Bytes().u32(1).u32(4096).u32(32 << 20).build());
      expect(out.go).toEqual(option === OPT.GO ? disk : undefined);
    }
  });

  it("omit NAME and DESCRIPTION unless asked, but always send BLOCK_SIZE", () => {
    const m = infos(run(neg(), OPT.GO, goData("other")).replies);
    expect([...m.keys()].sort()).toEqual([0, 3]);
  });

  it("advertise SEND_DF only once structured replies or extended headers are on", () => {
    expect(transmissionFlags(neg()) & 0x80).toBe(0);
    expect(transmissionFlags(neg({ structured: true })) & 0x80).toBe(0x80);
    expect(transmissionFlags(neg({ extended: true })) & 0x80).toBe(0x80);
  });

  it("answer an unknown export with ERR_UNKNOWN and stay in negotiation", () => {
    const out = run(neg(), OPT.GO, goData("nope"));
    expect(out.replies.map((r) => r.type)).toEqual([REP.ERR_UNKNOWN]);
    expect(out.replies[0]!.data.toString()).toContain('"nope"');
    expect(out.go).toBeUndefined();
  });

  it("answer every truncation and every overlong form with ERR_INVALID", () => {
    const good = goData("disk", [1, 3]);
    for (let n = 0; n < good.length; n++) {
      expect(run(neg(), OPT.GO, good.subarray(0, n)).replies.map((r) => r.type), `length ${n}`).toEqual([REP.ERR_INVALID]);
    }
    expect(run(neg(), OPT.GO, Buffer.concat([good, Buffer.from([0])])).replies[0]!.type).toBe(REP.ERR_INVALID);
    // name length larger than the data
    expect(run(neg(), OPT.INFO, new Bytes().u32(0xffffffff).u16(0).build()).replies[0]!.type).toBe(REP.ERR_INVALID);
    // invalid UTF-8 and embedded NUL
    expect(run(neg(), OPT.INFO, new Bytes().u32(1).u8(0xff).u16(0).build()).replies[0]!.type).toBe(REP.ERR_INVALID);
    expect(run(neg(), OPT.INFO, new Bytes().u32(1).u8(0).u16(0).build()).replies[0]!.type).toBe(REP.ERR_INVALID);
  });

  it("prefer the device block size when it is a power of two ≥ 512", () => {
    expect(preferredBlockSize({ ...disk, blockSize: 512 })).toBe(512);
    expect(preferredBlockSize({ ...disk, blockSize: 65536 })).toBe(65536);
    expect(preferredBlockSize({ ...disk, blockSize: 3000 })).toBe(4096);
    expect(preferredBlockSize({ ...disk, blockSize: 256 })).toBe(4096);
  });
});

describe("NBD_OPT_STRUCTURED_REPLY and NBD_OPT_EXTENDED_HEADERS", () => {
  it("ACK and record the mode", () => {
    const n = neg();
    expect(run(n, OPT.STRUCTURED_REPLY).replies.map((r) => r.type)).toEqual([REP.ACK]);
    expect(n.structured).toBe(true);
    expect(run(n, OPT.EXTENDED_HEADERS).replies.map((r) => r.type)).toEqual([REP.ACK]);
    expect(n.extended).toBe(true);
  });
  it("refuse data, and structured replies after extended headers", () => {
    expect(run(neg(), OPT.STRUCTURED_REPLY, Buffer.from([1])).replies[0]!.type).toBe(REP.ERR_INVALID);
    expect(run(neg(), OPT.EXTENDED_HEADERS, Buffer.from([1])).replies[0]!.type).toBe(REP.ERR_INVALID);
    const n = neg({ extended: true });
    expect(run(n, OPT.STRUCTURED_REPLY).replies[0]!.type).toBe(REP.ERR_EXT_HEADER_REQD);
    expect(n.structured).toBe(false);
  });
});

describe("metadata contexts", () => {
  const ctxOf = (r: OptReply) => ({ id: r.data.readUInt32BE(0), name: r.data.subarray(4).toString() });

  it("need structured replies first", () => {
    expect(run(neg(), OPT.LIST_META, metaData("disk", [])).replies[0]!.type).toBe(REP.ERR_INVALID);
    expect(run(neg(), OPT.SET_META, metaData("disk", ["base:allocation"])).replies[0]!.type).toBe(REP.ERR_INVALID);
  });

  it("LIST: no query or the base: wildcard lists base:allocation with id 0; other namespaces are ignored", () => {
    for (const q of [[], ["base:"], ["base:allocation"], ["qemu:dirty-bitmap:x", "base:"]]) {
      const out = run(neg({ structured: true }), OPT.LIST_META, metaData("disk", q));
      expect(out.replies.map((r) => r.type)).toEqual([REP.META_CONTEXT, REP.ACK]);
      expect(ctxOf(out.replies[0]!)).toEqual({ id: 0, name: "base:allocation" });
    }
    const none = run(neg({ structured: true }), OPT.LIST_META, metaData("disk", ["qemu:x", "base:other"]));
    expect(none.replies.map((r) => r.type)).toEqual([REP.ACK]);
  });

  it("SET: selects base:allocation for that export with a nonzero id; replaces earlier selections", () => {
    const n = neg({ structured: true });
    const out = run(n, OPT.SET_META, metaData("", ["base:allocation"]));
    expect(out.replies.map((r) => r.type)).toEqual([REP.META_CONTEXT, REP.ACK]);
    expect(ctxOf(out.replies[0]!)).toEqual({ id: 1, name: "base:allocation" });
    expect(n.metaExport).toBe("disk");
    // "base:" selects nothing in SET; zero queries select nothing.
    expect(run(n, OPT.SET_META, metaData("disk", ["base:"])).replies.map((r) => r.type)).toEqual([REP.ACK]);
    expect(n.metaExport).toBeUndefined();
    run(n, OPT.SET_META, metaData("other", ["base:allocation"]));
    expect(n.metaExport).toBe("other");
    // A failing SET still clears the selection.
    expect(run(n, OPT.SET_META, metaData("nope", ["base:allocation"])).replies[0]!.type).toBe(REP.ERR_UNKNOWN);
    expect(n.metaExport).toBeUndefined();
  });

  it("malformed data at every truncation is ERR_INVALID", () => {
    const good = metaData("disk", ["base:allocation", "x:y"]);
    for (let n = 0; n < good.length; n++) {
      const out = run(neg({ structured: true }), OPT.SET_META, good.subarray(0, n));
      expect(out.replies.map((r) => r.type), `length ${n}`).toEqual([REP.ERR_INVALID]);
    }
  });
});

describe("other options", () => {
  it("ABORT: ACK and end", () => {
    const out = run(neg(), OPT.ABORT, Buffer.from("ignored"));
    expect(out.replies.map((r) => r.type)).toEqual([REP.ACK]);
    expect(out.abort).toBe(true);
  });
  it("unknown options, PEEK_EXPORT and STARTTLS get ERR_UNSUP", () => {
    for (const o of [4, OPT.STARTTLS, 12, 0xffffffff]) expect(run(neg(), o).replies.map((r) => r.type)).toEqual([REP.ERR_UNSUP]);
  });
  it("during shutdown everything except ABORT gets ERR_SHUTDOWN", () => {
    const n = neg({ shuttingDown: true });
    expect(run(n, OPT.GO, goData("disk")).replies.map((r) => r.type)).toEqual([REP.ERR_SHUTDOWN]);
    expect(run(n, OPT.LIST).replies.map((r) => r.type)).toEqual([REP.ERR_SHUTDOWN]);
    expect(run(n, OPT.ABORT).replies.map((r) => r.type)).toEqual([REP.ACK]);
  });
});
