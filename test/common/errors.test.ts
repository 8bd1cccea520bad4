import { describe, expect, it } from "vitest";
import { ErrorCode, ExitCode, PfsError, exitCodeFor } from "../../src/common/errors.ts";
import { nameOf } from "../../src/common/names.ts";

describe("PfsError", () => {
  it("formats `<what> @0x<off>: <problem>: expected X, got Y`", () => {
    const e = PfsError.format("segment table", "bad segment count", { offset: 16, expected: 2, got: 9 });
    expect(e.message).toBe("segment table @0x10: bad segment count: expected 2, got 9");
    expect(e.code).toBe(ErrorCode.FORMAT);
  });

  it("maps codes to the documented exit statuses", () => {
    expect(exitCodeFor(PfsError.usage("x"))).toBe(ExitCode.USAGE);
    expect(exitCodeFor(PfsError.digest("blob", "a", "b"))).toBe(ExitCode.IMAGE);
    expect(exitCodeFor(PfsError.notFound("tag"))).toBe(ExitCode.IMAGE);
    expect(exitCodeFor(PfsError.io("write", Object.assign(new Error("no space"), { code: "ENOSPC" })))).toBe(ExitCode.IO);
    expect(exitCodeFor(new Error("bug"))).toBe(ExitCode.INTERNAL);
  });

  it("io() keeps the errno name in the message", () => {
    const e = PfsError.io("open blobs/sha256/ab", Object.assign(new Error("EACCES: permission denied, open 'x'"), { code: "EACCES" }));
    expect(e.message).toBe("open blobs/sha256/ab: EACCES (permission denied, open 'x')");
  });
});

describe("nameOf", () => {
  it("names known values and marks unknown ones", () => {
    const T = { READ: 0, WRITE: 1 } as const;
    expect(nameOf(T, 1)).toBe("WRITE");
    expect(nameOf(T, 0x42)).toBe("unknown (0x42)");
  });
});
