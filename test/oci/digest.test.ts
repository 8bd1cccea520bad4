import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { bytesToHex, formatDigest, hexToBytes, isSha256Hex, parseDigest, sha256, sha256Hex } from "../../src/oci/digest.ts";

describe("oci/digest", () => {
  it("sha256 matches the spec §6 put_blob vector and sha256sum", () => {
    const data = new TextEncoder().encode("meshuggah rocks");
    expect(sha256Hex(data)).toBe("3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d");
    const viaCoreutils = execFileSync("sha256sum", { input: data }).toString().split(" ")[0];
    expect(bytesToHex(sha256(data))).toBe(viaCoreutils);
  });

  it("hex round-trips and rejects malformed digests", () => {
    const hex = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    expect(bytesToHex(hexToBytes(hex))).toBe(hex);
    expect(isSha256Hex(hex)).toBe(true);
    expect(isSha256Hex(hex.toUpperCase())).toBe(false);
    expect(() => hexToBytes("abc")).toThrow(/not a sha256 hex digest/);
  });

  it("parses sha256:<hex> and names the object on failure", () => {
    const hex = "a".repeat(64);
    expect(parseDigest(formatDigest(hex), "x")).toBe(hex);
    expect(() => parseDigest("sha256:xyz", "layers[1] digest")).toThrow(/layers\[1\] digest: malformed digest "sha256:xyz"/);
    expect(() => parseDigest(hex, "d")).toThrow(/malformed digest/);
    expect(() => parseDigest(42, "d")).toThrow(/not a string/);
    try {
      parseDigest(`sha512:${"b".repeat(128)}`, "d");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PfsError);
      expect((e as PfsError).code).toBe(ErrorCode.UNSUPPORTED);
    }
  });
});
