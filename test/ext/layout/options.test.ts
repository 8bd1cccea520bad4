import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../../src/common/errors.ts";
import { MTIME_MAX, MTIME_MIN, encodeTime, resolveOptions, truncateUtf8 } from "../../../src/ext/layout/options.ts";
import { csumSeed } from "../../../src/ext/csum.ts";

describe("options", () => {
  const saved = process.env.SOURCE_DATE_EPOCH;
  afterEach(() => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  });

  it("takes mtime from the option, else SOURCE_DATE_EPOCH, else 0", () => {
    delete process.env.SOURCE_DATE_EPOCH;
    expect(resolveOptions({}).mtime).toBe(0);
    process.env.SOURCE_DATE_EPOCH = "1234567890";
    expect(resolveOptions({}).mtime).toBe(1234567890);
    expect(resolveOptions({ mtime: 7 }).mtime).toBe(7);
    process.env.SOURCE_DATE_EPOCH = "soon";
    expect(() => resolveOptions({})).toThrow(expect.objectContaining({ code: ErrorCode.USAGE }));
  });

  it("refuses times ext4 cannot store", () => {
    expect(() => resolveOptions({ mtime: MTIME_MAX + 1 })).toThrow(expect.objectContaining({ code: ErrorCode.USAGE }));
    expect(() => resolveOptions({ mtime: MTIME_MIN - 1 })).toThrow(expect.objectContaining({ code: ErrorCode.USAGE }));
    expect(() => resolveOptions({ mtime: 1.5 })).toThrow(expect.objectContaining({ code: ErrorCode.USAGE }));
  });

  it("encodes times as 32 signed bits plus 2 epoch bits", () => {
    expect(encodeTime(0)).toEqual({ lo: 0, extra: 0 });
    expect(encodeTime(-1)).toEqual({ lo: 0xffffffff, extra: 0 });
    expect(encodeTime(MTIME_MIN)).toEqual({ lo: 0x80000000, extra: 0 });
    expect(encodeTime(2 ** 31)).toEqual({ lo: 0x80000000, extra: 1 });
    expect(encodeTime(2 ** 32 + 5)).toEqual({ lo: 5, extra: 1 });
    expect(encodeTime(MTIME_MAX)).toEqual({ lo: 0x7fffffff, extra: 3 });
  });

  it("derives UUID and hash seed from the digest, deterministically, as an RFC 9562 v8 UUID", () => {
    const a = resolveOptions({ digest: "sha256:aa", mtime: 0 });
    const b = resolveOptions({ digest: "sha256:aa", mtime: 0 });
    const c = resolveOptions({ digest: "sha256:bb", mtime: 0 });
    expect(a).toEqual(b);
    expect(Buffer.from(a.uuid).equals(Buffer.from(c.uuid))).toBe(false);
    expect([...a.hashSeed]).not.toEqual([...c.hashSeed]);
    expect(a.uuid[6]! >> 4).toBe(8);
    expect(a.uuid[8]! >> 6).toBe(2);
    expect(a.csumSeed).toBe(csumSeed(a.uuid));
  });

  it("truncates the label to 16 bytes without splitting a character", () => {
    expect(Buffer.from(truncateUtf8("short", 16)).toString()).toBe("short");
    expect(truncateUtf8("x".repeat(20), 16).length).toBe(16);
    const l = truncateUtf8(`${"a".repeat(15)}é`, 16);
    expect(Buffer.from(l).toString()).toBe("a".repeat(15));
    expect(Buffer.from(resolveOptions({ label: "ubuntu:24.04-minimal", mtime: 0 }).label).toString()).toBe("ubuntu:24.04-min");
  });
});
