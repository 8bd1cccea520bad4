import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { nativeSeekable } from "../../../src/puzzlefs/native.ts";
import {
  compressSeekable as compressDefault,
  compressSeekableJs,
  SEEKABLE_MAGIC,
  SKIPPABLE_SEEK_TABLE_MAGIC,
} from "../../../src/puzzlefs/compression/seekable-encode.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const zstdD = (b: Uint8Array) => execFileSync("zstd", ["-d", "-q", "-c"], { input: b, maxBuffer: 1 << 30 });

/** Parse the Foot seek table independently of the encoder. */
function seekTable(b: Buffer): Array<[number, number]> {
  const n = b.readUInt32LE(b.length - 9);
  expect(b[b.length - 5]).toBe(0);
  expect(b.readUInt32LE(b.length - 4)).toBe(0x8f92eab1);
  const start = b.length - (n * 8 + 17);
  expect(b.readUInt32LE(start)).toBe(0x184d2a5e);
  expect(b.readUInt32LE(start + 4)).toBe(n * 8 + 9);
  return Array.from({ length: n }, (_, i) => [b.readUInt32LE(start + 8 + 8 * i), b.readUInt32LE(start + 12 + 8 * i)]);
}

it("the C encoder is built (zstd-napi's libzstd is present after npm ci) and is the default", () => {
  const native = nativeSeekable();
  expect(native, "no C encoder: is node_modules/zstd-napi/build/Release/zstd.a missing (a prebuilt zstd-napi)?").not.toBeNull();
  const data = Buffer.concat([randomBytes(5000), Buffer.alloc(70000, 3)]);
  expect(Buffer.from(compressDefault(data)).equals(native!(data))).toBe(true);
});

// Every vector below, for both encoders: the default (C, when built) and the JS reference.
for (const [encoder, compressSeekable] of [
  ["default", compressDefault],
  ["JS reference", compressSeekableJs],
] as const) {
  describe(`compressSeekable, ${encoder} encoder (spec §3.6)`, () => {
    it("reproduces upstream's SekienAkashita chunk blob byte for byte", () => {
      const jpg = readFileSync("test/fixtures/SekienAkashita.jpg");
      const out = Buffer.from(compressSeekable(jpg));
      const want = readFileSync("test/fixtures/SekienAkashita.zeekstd.zst");
      expect(out.length).toBe(104649);
      expect(sha256(out)).toBe("d568d1505905ee36e66ef6f94f544a50f52c6a63574048da0cf351b8235ff42b");
      expect(out.equals(want)).toBe(true);
      expect(zstdD(out).equals(jpg)).toBe(true);
      const t = seekTable(out);
      expect(t.length).toBe(27);
      expect(t[0]).toEqual([3842, 4096]);
      expect(t.reduce((s, [, d]) => s + d, 0)).toBe(jpg.length);
    });

    it("writes streaming-API frames (no content size) and restores with zstd -d", () => {
      const data = Buffer.concat([Buffer.alloc(10000, 7), randomBytes(5000), Buffer.from("tail")]);
      const out = Buffer.from(compressSeekable(data));
      expect([...out.subarray(0, 6)]).toEqual([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]);
      expect(zstdD(out).equals(data)).toBe(true);
      const t = seekTable(out);
      expect(t.map(([, d]) => d)).toEqual([4096, 4096, 4096, 15004 - 3 * 4096]);
      // Every entry's c_size spans exactly one zstd frame that starts with the magic.
      let off = 0;
      for (const [c] of t) {
        expect(out.readUInt32LE(off)).toBe(0xfd2fb528);
        off += c;
      }
      expect(off).toBe(out.length - (t.length * 8 + 17));
      expect(SKIPPABLE_SEEK_TABLE_MAGIC).toBe(0x184d2a5e);
      expect(SEEKABLE_MAGIC).toBe(0x8f92eab1);
    });

    it("an exact multiple of 4096 gives no empty trailing frame; empty input gives one empty frame", () => {
      expect(seekTable(Buffer.from(compressSeekable(Buffer.alloc(8192, 1)))).map(([, d]) => d)).toEqual([4096, 4096]);
      const empty = Buffer.from(compressSeekable(new Uint8Array(0)));
      expect(seekTable(empty)).toEqual([[9, 0]]);
      expect(zstdD(empty).length).toBe(0);
    });

    // zeekstd 0.5.0's 131591-byte output-buffer quirk. Inputs: random (raw-block,
    // 4105-byte) frames so that a frame ends exactly at output offset 131591.
    // Expected digests: output of zeekstd 0.5.0 itself (built from its v0.5.0-lib
    // tag against Debian's zstd-safe) on the same input.
    const prand = (n: number, seed: string) => {
      const out: Buffer[] = [];
      for (let i = 0; out.length * 32 < n; i++) out.push(createHash("sha256").update(seed + i).digest());
      return Buffer.concat(out).subarray(0, n);
    };
    const full = prand(32 * 4096, "r");

    it("quirk (a): the final frame ending at 131591 is missing from the seek table", () => {
      const input = Buffer.concat([full, prand(222, "t")]);
      const out = Buffer.from(compressSeekable(input));
      expect(out.length).toBe(131864);
      expect(sha256(out)).toBe("8248e7bf6e828b0a77372284a415beb01b4361c4918dbe7811fbb937aa234019");
      expect(seekTable(out).length).toBe(32); // 33 frames written
      expect(zstdD(out).equals(input)).toBe(true);
    });

    it("quirk (b): a middle frame ending at 131591 is followed by an empty frame sharing its entry", () => {
      const input = Buffer.concat([full, prand(212, "k"), Buffer.alloc(4096 - 212), prand(1000, "x")]);
      const out = Buffer.from(compressSeekable(input));
      expect(out.length).toBe(132898);
      expect(sha256(out)).toBe("ff48b700e025843f257e9c5bb8f92de85d468afa5be759d103b9c65ecb76f90d");
      const t = seekTable(out);
      expect(t.length).toBe(34);
      expect(t[32]).toEqual([231 + 9, 4096]);
      expect([...out.subarray(131591, 131600)]).toEqual([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00]);
      expect(zstdD(out).equals(input)).toBe(true);
    });
  });
}
