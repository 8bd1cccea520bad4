/**
 * Content digests of the OCI image layout (spec §1.1): every blob is named by
 * the lowercase hex sha256 of its bytes, and descriptors carry it as
 * `sha256:<hex>`. Only sha256 is used by PuzzleFS.
 */
import { createHash } from "node:crypto";
import { ErrorCode, PfsError } from "../common/errors.ts";

const HEX64 = /^[0-9a-f]{64}$/;

export function sha256(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function isSha256Hex(s: string): boolean {
  return HEX64.test(s);
}

export function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Lowercase 64-char hex → 32 bytes; anything else is a usage/format error. */
export function hexToBytes(hex: string, what = "digest"): Uint8Array {
  if (!HEX64.test(hex)) {
    throw PfsError.format(what, "not a sha256 hex digest (64 lowercase hex characters)", {
      expected: "64 hex chars",
      got: JSON.stringify(hex.length > 80 ? `${hex.slice(0, 80)}…` : hex),
    });
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/**
 * `sha256:<hex>` (an OCI descriptor digest) → hex. Other algorithms are valid
 * OCI but PuzzleFS never writes them, so they are UNSUPPORTED, not FORMAT.
 */
export function parseDigest(s: unknown, what: string): string {
  if (typeof s !== "string") throw PfsError.format(what, "digest is not a string", { expected: "string", got: typeof s });
  const colon = s.indexOf(":");
  if (colon <= 0) throw PfsError.format(what, `malformed digest ${JSON.stringify(s)}`, { expected: "sha256:<hex>", got: s });
  const alg = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  if (alg !== "sha256") {
    throw new PfsError(ErrorCode.UNSUPPORTED, `${what}: digest algorithm ${JSON.stringify(alg)} is not supported (only sha256)`, {
      data: { what, got: s },
    });
  }
  if (!HEX64.test(hex)) throw PfsError.format(what, `malformed digest ${JSON.stringify(s)}`, { expected: "sha256:<64 lowercase hex>", got: s });
  return hex;
}

export function formatDigest(hex: string): string {
  return `sha256:${hex}`;
}
