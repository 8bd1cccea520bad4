import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { nameOf } from "../../src/common/names.ts";
import * as W from "../../src/nbd/wire.ts";
import { Bytes, GREETING } from "./helpers/proto.ts";

/** Naive encoder driven by a field table: each field big-endian at its offset. */
function naive(s: W.Struct, values: Record<string, bigint | number>): Buffer {
  const b = Buffer.alloc(s.size);
  for (const f of s.fields) {
    const v = BigInt(values[f.name] ?? 0);
    for (let i = 0; i < f.width; i++) b[f.offset + i] = Number((v >> BigInt(8 * (f.width - 1 - i))) & 0xffn);
  }
  return b;
}

describe("field tables", () => {
  it("are contiguous from offset 0 with no overlaps", () => {
    for (const s of W.ALL_STRUCTS) {
      let at = 0;
      for (const f of s.fields) {
        expect(f.offset, `${s.name}.${f.name}`).toBe(at);
        expect([1, 2, 4, 8]).toContain(f.width);
        at += f.width;
      }
      expect(at, s.name).toBe(s.size);
    }
  });

  it("have the sizes doc/proto.md gives", () => {
    const sizes: Record<string, number> = {
      greeting: 18,
      "client flags": 4,
      "option request": 16,
      "option reply": 20,
      "export name reply": 10,
      NBD_INFO_EXPORT: 12,
      NBD_INFO_BLOCK_SIZE: 14,
      request: 28,
      "extended request": 32,
      "simple reply": 16,
      "structured reply chunk": 20,
      "extended reply chunk": 32,
      NBD_REPLY_TYPE_OFFSET_HOLE: 12,
      NBD_REPLY_TYPE_ERROR: 6,
      "block status descriptor": 8,
      "extended block status descriptor": 16,
    };
    for (const s of W.ALL_STRUCTS) expect(s.size, s.name).toBe(sizes[s.name]);
    expect(W.ALL_STRUCTS.length).toBe(Object.keys(sizes).length);
  });
});

describe("constants", () => {
  it("match the spec's values", () => {
    expect(W.NBD_MAGIC.INIT_PASSWD).toBe(BigInt("0x" + Buffer.from("NBDMAGIC").toString("hex")));
    expect(W.NBD_MAGIC.IHAVEOPT).toBe(BigInt("0x" + Buffer.from("IHAVEOPT").toString("hex")));
    expect(W.NBD_REP.ERR_UNSUP).toBe(2 ** 31 + 1);
    expect(W.NBD_REP.ERR_UNKNOWN).toBe(2 ** 31 + 6);
    expect(W.NBD_REP.ERR_TOO_BIG).toBe(2 ** 31 + 9);
    expect(W.NBD_REPLY_TYPE.ERROR).toBe(2 ** 15 + 1);
    expect(W.NBD_REPLY_TYPE.ERROR_OFFSET).toBe(2 ** 15 + 2);
    expect(W.NBD_TX_FLAG.CAN_MULTI_CONN).toBe(0x100);
    expect(W.NBD_TX_FLAG.SEND_CACHE).toBe(0x400);
    expect(W.MAX_PAYLOAD).toBe(33554432);
  });

  it("name values for logs", () => {
    expect(nameOf(W.NBD_CMD, 7)).toBe("BLOCK_STATUS");
    expect(nameOf(W.NBD_OPT, 11)).toBe("EXTENDED_HEADERS");
    expect(nameOf(W.NBD_OPT, 99)).toBe("unknown (0x63)");
  });
});

describe("encoders agree with the tables", () => {
  it("greeting: NBDMAGIC IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES", () => {
    const g = W.encodeGreeting();
    expect(g).toEqual(naive(W.GREETING, { passwd: W.NBD_MAGIC.INIT_PASSWD, magic: W.NBD_MAGIC.IHAVEOPT, handshake_flags: 3 }));
    expect(g).toEqual(GREETING);
  });

  it("option reply header plus data", () => {
    const r = W.encodeOptionReply(7, W.NBD_REP.INFO, Buffer.from("xyz"));
    const head = naive(W.OPTION_REPLY, { magic: W.NBD_MAGIC.OPTION_REPLY, option: 7, reply_type: 3, length: 3 });
    expect(r).toEqual(Buffer.concat([head, Buffer.from("xyz")]));
  });

  it("export name reply with and without the 124 zero bytes", () => {
    const head = naive(W.EXPORT_NAME_REPLY, { size: 2n ** 40n + 5n, transmission_flags: 0x503 });
    expect(W.encodeExportNameReply(2 ** 40 + 5, 0x503, true)).toEqual(head);
    expect(W.encodeExportNameReply(2 ** 40 + 5, 0x503, false)).toEqual(Buffer.concat([head, Buffer.alloc(124)]));
  });

  it("info replies", () => {
    expect(W.encodeInfoExport(1 << 20, 0x187)).toEqual(naive(W.INFO_EXPORT, { info: 0, size: 1 << 20, transmission_flags: 0x187 }));
    expect(W.encodeInfoBlockSize(1, 4096, W.MAX_PAYLOAD)).toEqual(
      naive(W.INFO_BLOCK_SIZE, { info: 3, minimum: 1, preferred: 4096, maximum: W.MAX_PAYLOAD }),
    );
    expect(W.encodeInfoString(W.NBD_INFO.NAME, "dïsk")).toEqual(new Bytes().u16(1).str("dïsk").build());
    expect(W.encodeLengthPrefixed("a", "desc")).toEqual(new Bytes().u32(1).str("a").str("desc").build());
    expect(W.encodeMetaContext(1, "base:allocation")).toEqual(new Bytes().u32(1).str("base:allocation").build());
  });
});

describe("decoders", () => {
  fcTest.prop([fc.nat(0xffff), fc.nat(0xffff), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat(0xffffffff)])(
    "compact request round-trips through the table encoding",
    (flags, type, cookie, offset, length) => {
      const b = naive(W.REQUEST, { magic: W.NBD_MAGIC.REQUEST, flags, type, cookie, offset, length });
      expect(W.decodeRequest(b, false)).toEqual({ magic: W.NBD_MAGIC.REQUEST, flags, type, cookie, offset, length: BigInt(length) });
    },
  );

  fcTest.prop([fc.nat(0xffff), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })])(
    "extended request keeps the 64-bit length",
    (type, offset, length) => {
      const b = naive(W.EXTENDED_REQUEST, { magic: W.NBD_MAGIC.EXTENDED_REQUEST, flags: 0x20, type, cookie: 9n, offset, length });
      expect(W.decodeRequest(b, true)).toEqual({ magic: W.NBD_MAGIC.EXTENDED_REQUEST, flags: 0x20, type, cookie: 9n, offset, length });
    },
  );

  it("option header", () => {
    const b = naive(W.OPTION_REQUEST, { magic: W.NBD_MAGIC.IHAVEOPT, option: 7, length: 0xffffffff });
    expect(W.decodeOptionHeader(b)).toEqual({ magic: W.NBD_MAGIC.IHAVEOPT, option: 7, length: 0xffffffff });
  });
});

describe("clampMessage", () => {
  it("keeps messages within 4096 bytes without splitting a UTF-8 character", () => {
    const m = W.clampMessage("é".repeat(3000)); // 6000 bytes
    expect(m.length).toBe(4096);
    expect(m.toString("utf8")).toBe("é".repeat(2048));
    const odd = W.clampMessage("a" + "é".repeat(3000));
    expect(odd.length).toBe(4095);
    expect(Buffer.from(odd.toString("utf8"))).toEqual(odd);
    expect(W.clampMessage("short").toString()).toBe("short");
  });
});
