import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { SeekableReader, hasSeekableFooter, parseSeekTable } from "../../../src/puzzlefs/compression/seekable.ts";
import { FIXTURES, sha256hex } from "../../helpers/oci-fixtures.ts";

const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));
const CURRENT = readFileSync(join(FIXTURES, "SekienAkashita.zeekstd.zst"));
const LEGACY = readFileSync(join(FIXTURES, "SekienAkashita.legacy-seekable.zst"));
const tmp = mkdtempSync(join(tmpdir(), "pfs-seek-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fail(f: () => unknown, code: string, re: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(code);
    expect((e as PfsError).message).toMatch(re);
    return;
  }
  throw new Error("expected an error");
}

describe.each([
  ["zeekstd Foot table", CURRENT, false, "d568d1505905ee36e66ef6f94f544a50f52c6a63574048da0cf351b8235ff42b"],
  ["legacy checksummed table", LEGACY, true, "3eee1082ab3babf6c1595f1069d11ebc2a60135890a11e402e017ddd831a220d"],
])("compression/seekable: %s", (_name, blob, checksums, hex) => {
  it("is the spec §6 blob and `zstd -d` (the oracle) gives the jpg", () => {
    expect(sha256hex(blob)).toBe(hex);
    expect(sha256hex(execFileSync("zstd", ["-d", "-c"], { input: blob, maxBuffer: 1 << 24 }))).toBe(sha256hex(JPG));
  });

  it("seek table: 27 frames of 4096 (last shorter), frame 0 c_size 3842 for the current table", () => {
    const t = parseSeekTable(blob, "blob");
    expect(t.frameCount).toBe(27);
    expect(t.checksums).toBe(checksums);
    expect(t.dOffsets[27]).toBe(109466);
    for (let i = 0; i < 26; i++) expect(t.dOffsets[i + 1]! - t.dOffsets[i]!).toBe(4096);
    expect(t.cOffsets[1]).toBe(3842);
    expect(hasSeekableFooter(blob)).toBe(true);
    expect(hasSeekableFooter(JPG)).toBe(false);
  });

  it("decodes the whole jpg", () => {
    const r = new SeekableReader(blob, "blob");
    expect(r.size).toBe(109466);
    expect(Buffer.from(r.read(0, r.size)).equals(JPG)).toBe(true);
    expect(r.framesDecoded).toBe(27);
  });

  it("reads at every frame boundary ±1 return the right bytes, decoding only the frames touched", () => {
    const r = new SeekableReader(blob, "blob");
    for (let k = 0; k <= 27; k++) {
      const b = Math.min(k * 4096, 109466);
      for (const off of [b - 1, b, b + 1]) {
        if (off < 0 || off > 109466) continue;
        for (const len of [0, 1, 2, 4096, 5000]) {
          const n = Math.min(len, 109466 - off);
          const before = r.framesDecoded;
          const got = r.read(off, n);
          expect(Buffer.from(got).equals(JPG.subarray(off, off + n)), `read(${off}, ${n})`).toBe(true);
          const frames = n === 0 ? 0 : Math.floor((off + n - 1) / 4096) - Math.floor(off / 4096) + 1;
          expect(r.framesDecoded - before).toBe(frames);
        }
      }
    }
  });

  it("readInto: the same bytes written into a caller's buffer (whole frames decoded in place), the same frames decoded, nothing outside it touched", () => {
    const r = new SeekableReader(blob, "blob");
    for (const [off, len] of [[0, 109466], [0, 4096], [4096, 8192], [1, 4095], [4095, 4098], [100, 50000], [109465, 1], [109466, 0], [8192, 101274]]) {
      const buf = Buffer.alloc(len! + 8, 0xee);
      const before = r.framesDecoded;
      r.readInto(off!, buf.subarray(4, 4 + len!));
      expect(buf.subarray(4, 4 + len!).equals(JPG.subarray(off!, off! + len!)), `readInto(${off}, ${len})`).toBe(true);
      expect([...buf.subarray(0, 4), ...buf.subarray(4 + len!)]).toEqual(Array(8).fill(0xee));
      const frames = len === 0 ? 0 : Math.floor((off! + len! - 1) / 4096) - Math.floor(off! / 4096) + 1;
      expect(r.framesDecoded - before).toBe(frames);
    }
    fail(() => r.readInto(109466 - 1, Buffer.alloc(2)), ErrorCode.FORMAT, /range \[109465, \+2\) is outside the uncompressed data/);
  });

  it("refuses reads past the end", () => {
    const r = new SeekableReader(blob, "chunk X");
    fail(() => r.read(109466 - 1, 2), ErrorCode.FORMAT, /^chunk X: range \[109465, \+2\) is outside the uncompressed data/);
  });
});

describe("compression/seekable: hostile tables", () => {
  const mutate = (f: (b: Buffer, dv: DataView) => void): Buffer => {
    const b = Buffer.from(CURRENT);
    f(b, new DataView(b.buffer, b.byteOffset, b.byteLength));
    return b;
  };
  const tableStart = CURRENT.length - 9 - 27 * 8 - 8;

  it("bad magic, reserved bits, frame count beyond the blob, bad skippable header", () => {
    fail(() => parseSeekTable(mutate((b) => (b[b.length - 1] = 0)), "B"), ErrorCode.FORMAT, /^B @0x[0-9a-f]+: bad seekable magic/);
    fail(() => parseSeekTable(mutate((b) => (b[b.length - 5] = 0x04)), "B"), ErrorCode.FORMAT, /reserved bits/);
    fail(() => parseSeekTable(mutate((_b, dv) => dv.setUint32(CURRENT.length - 9, 0xffffffff, true)), "B"), ErrorCode.FORMAT, /claims 4294967295 frames/);
    fail(() => parseSeekTable(mutate((_b, dv) => dv.setUint32(CURRENT.length - 9, 26, true)), "B"), ErrorCode.FORMAT, /skippable frame has a bad magic/);
    fail(() => parseSeekTable(mutate((_b, dv) => dv.setUint32(tableStart + 4, 7, true)), "B"), ErrorCode.FORMAT, /seek table size mismatch/);
    fail(() => parseSeekTable(new Uint8Array(5), "B"), ErrorCode.FORMAT, /too short/);
  });

  it("frames running past the table, oversized frames, frames decoding to the wrong size", () => {
    fail(() => parseSeekTable(mutate((_b, dv) => dv.setUint32(tableStart + 8, 1 << 30, true)), "B"), ErrorCode.FORMAT, /frames run past the seek table/);
    fail(() => parseSeekTable(mutate((_b, dv) => dv.setUint32(tableStart + 12, 1 << 30, true)), "B"), ErrorCode.LIMIT, /B frame 0: exceeds limit/);
    const wrong = new SeekableReader(mutate((_b, dv) => dv.setUint32(tableStart + 12, 4000, true)), "B");
    fail(() => wrong.read(0, 10), ErrorCode.FORMAT, /zstd frame 0 does not decode|decoded to the wrong size/);
    const garbage = new SeekableReader(mutate((b) => b.fill(0x55, 0, 4)), "B"); // frame 0's zstd magic
    fail(() => garbage.read(0, 10), ErrorCode.FORMAT, /^B @0x0: zstd frame 0 does not decode/);
    // Frames after the corrupted one still decode.
    expect(Buffer.from(garbage.read(4096 * 3, 100)).equals(JPG.subarray(4096 * 3, 4096 * 3 + 100))).toBe(true);
  });
});
