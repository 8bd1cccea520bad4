import { describe, expect, it } from "vitest";
import { quoteName } from "../../src/cli/image-arg.ts";

const b = (...x: number[]) => Uint8Array.from(x);
const u = (s: string) => new TextEncoder().encode(s);

describe("cli/image-arg quoteName", () => {
  it("passes printable UTF-8 through", () => {
    expect(quoteName(u("hello wörld ☃.txt"))).toBe("hello wörld ☃.txt");
  });

  it("escapes control bytes, backslashes and invalid UTF-8, keeping valid parts", () => {
    expect(quoteName(u("a\nb\tc"))).toBe("a\\nb\\tc");
    expect(quoteName(u("back\\slash"))).toBe("back\\\\slash");
    expect(quoteName(b(0x66, 0xff, 0xfe, 0x6f))).toBe("f\\xff\\xfeo");
    expect(quoteName(b(0x61, 0xc3, 0xa9, 0x80, 0x01))).toBe("aé\\x80\\x01");
    expect(quoteName(b(0xc2, 0x85))).toBe("\\xc2\\x85"); // U+0085, a C1 control
    expect(quoteName(b(0xe2, 0x98))).toBe("\\xe2\\x98"); // truncated sequence
  });
});
