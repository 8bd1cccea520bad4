import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { CdcConfig, PUZZLEFS_CDC, SlabCdc, StreamCdc, chunkAll, cut, type CdcParams, type Slab } from "../../../src/puzzlefs/builder/fastcdc.ts";

const jpg = readFileSync("test/fixtures/SekienAkashita.jpg");
// Every vector runs twice: with the C inner loop (the default) and the JS reference.
describe.each([true, false])("FastCDC v2020 on SekienAkashita.jpg (fastcdc-rs vectors), native=%s", (native) => {
  const pairs = (data: Uint8Array, p: CdcParams) => chunkAll(data, p, { native }).map((c) => [c.hash, c.length] as const);

  it("uses the requested implementation", () => {
    expect(new StreamCdc(PUZZLEFS_CDC, { native }).isNative).toBe(native);
  });

  it("4k/16k/64k, level 1: hashes, lengths and chunk MD5s", () => {
    const chunks = chunkAll(jpg, { min: 4096, avg: 16384, max: 65535, level: 1 }, { native });
    expect(chunks.map((c) => [c.hash, c.length])).toEqual([
      [17968276318003433923n, 21325],
      [8197189939299398838n, 17140],
      [13019990849178155730n, 28084],
      [4509236223063678303n, 18217],
      [2504464741100432583n, 24700],
    ]);
    expect(chunks.map((c) => createHash("md5").update(c.data).digest("hex"))).toEqual([
      "2bb52734718194617c957f5e07ee6054",
      "badfb0757fe081c20336902e7131f768",
      "18412d7414de6eb42f638351711f729d",
      "04fe1405fc5f960363bfcd834c056407",
      "1aa7ad95f274d6ba34a983946ebc5af3",
    ]);
    expect(chunks.map((c) => c.offset)).toEqual([0, 21325, 38465, 66549, 84766]);
  });

  it("8k/32k/128k, level 1", () => {
    expect(pairs(jpg, { min: 8192, avg: 32768, max: 131072, level: 1 })).toEqual([
      [15733367461443853673n, 66549],
      [6321136627705800457n, 42917],
    ]);
  });

  it("puzzlefs's 16k/64k/256k, level 1: one chunk", () => {
    expect(pairs(jpg, PUZZLEFS_CDC)).toEqual([[2504464741100432583n, 109466]]);
  });

  it("level 0, 4k/16k/64k", () => {
    expect(pairs(jpg, { min: 4096, avg: 16384, max: 65535, level: 0 })).toEqual([
      [443122261039895162n, 6634],
      [15733367461443853673n, 59915],
      [10460176299449652894n, 25597],
      [6197802202431009942n, 5237],
      [6321136627705800457n, 12083],
    ]);
  });

  it("level 3, 8k/16k/32k", () => {
    expect(pairs(jpg, { min: 8192, avg: 16384, max: 32768, level: 3 })).toEqual([
      [10718006254707412376n, 17350],
      [13104072099671895560n, 19911],
      [12322483109039221194n, 17426],
      [16009206469796846404n, 17519],
      [2473608525189754172n, 19940],
      [2504464741100432583n, 17320],
    ]);
  });

  it("10240 zero bytes with 64/256/1024: ten max-size chunks", () => {
    const got = pairs(new Uint8Array(10240), { min: 64, avg: 256, max: 1024, level: 1 });
    expect(got).toEqual(Array.from({ length: 10 }, () => [14169102344523991076n, 1024]));
  });

  it("the mixed-noop stream (spec §6): cuts across file boundaries", () => {
    // a.txt ‖ z.txt ‖ big.bin (SHA-256 counter stream, 300000 bytes)
    const parts: Buffer[] = [];
    for (let i = 0, n = 0; n < 300000; i++, n += 32) {
      const c = Buffer.alloc(4);
      c.writeUInt32BE(i);
      parts.push(createHash("sha256").update(Buffer.concat([Buffer.from("puzzlefs-fixture"), c])).digest());
    }
    const big = Buffer.concat(parts).subarray(0, 300000);
    const s = new StreamCdc(PUZZLEFS_CDC, { native });
    const chunks = [...s.push(Buffer.from("hello\n")), ...s.push(Buffer.from("zzz")), ...s.push(big), ...s.finish()];
    expect(chunks.map((c) => [c.offset, c.length, c.hash])).toEqual([
      [0, 152560, 3458281283847270036n],
      [152560, 72716, 1944993329649322700n],
      [225276, 58762, 5607549433983077720n],
      [284038, 15971, 0n],
    ]);
  });

  it("short and empty streams", () => {
    expect(pairs(new Uint8Array(0), PUZZLEFS_CDC)).toEqual([]);
    expect(pairs(new Uint8Array(5), PUZZLEFS_CDC)).toEqual([[0n, 5]]);
    expect(pairs(new Uint8Array(16384), PUZZLEFS_CDC)).toEqual([[0n, 16384]]);
  });

  it("rejects parameters fastcdc-rs rejects", () => {
    expect(() => new StreamCdc({ min: 32, avg: 256, max: 1024, level: 1 })).toThrow(/out of range/);
    expect(() => new StreamCdc({ min: 4096, avg: 2048, max: 65536, level: 1 })).toThrow(/out of range/);
    expect(() => new StreamCdc({ min: 4096, avg: 16384, max: 65536, level: 4 })).toThrow(/out of range/);
  });
});

describe("streaming", () => {
  // Larger than StreamCdc's 4 MiB buffer, so its compaction runs several times.
  const data = new Uint8Array(randomBytes(11 * 1024 * 1024));
  // a long run of zeros forces max-size cuts in the middle
  data.fill(0, 1_000_000, 1_700_000);
  const whole = chunkAll(data);

  it("cuts like the JS cut() applied to the whole buffer, one chunk after another", () => {
    const cfg = new CdcConfig(PUZZLEFS_CDC);
    const h = { hi: 0, lo: 0 };
    const ref: Array<[number, number]> = [];
    for (let off = 0; off < data.length; ) {
      const len = cut(cfg, data, off, data.length - off, h);
      ref.push([off, len]);
      off += len;
    }
    expect(ref.length).toBeGreaterThan(100);
    expect(whole.map((c) => [c.offset, c.length])).toEqual(ref);
  });

  test.prop([fc.array(fc.integer({ min: 1, max: 1_500_000 }), { minLength: 1, maxLength: 30 })], { numRuns: 15 })(
    "any split of the input gives the cuts of the whole buffer",
    (sizes) => {
      const s = new StreamCdc();
      const got = [];
      let pos = 0;
      for (let k = 0; pos < data.length; k++) {
        const n = sizes[k % sizes.length]!;
        got.push(...s.push(data.subarray(pos, pos + n)));
        pos += n;
      }
      got.push(...s.finish());
      expect(got.map((c) => [c.offset, c.length, c.hash])).toEqual(whole.map((c) => [c.offset, c.length, c.hash]));
      expect(Buffer.concat(got.map((c) => c.data)).equals(data)).toBe(true);
    },
  );

  test.prop(
    [
      fc.uint8Array({ minLength: 0, maxLength: 300_000 }),
      fc.constantFrom(
        { min: 64, avg: 256, max: 1024, level: 0 },
        { min: 256, avg: 1024, max: 4096, level: 2 },
        { min: 4096, avg: 16384, max: 65535, level: 3 },
        PUZZLEFS_CDC,
      ),
      fc.nat({ max: 255 }),
    ],
    { numRuns: 60 },
  )("the C inner loop cuts exactly like the JS reference", (bytes, params, fill) => {
    // Low-entropy runs make both mask tests and max-size cuts happen.
    const data = bytes.map((b, i) => (i % 3 === 0 ? fill : b));
    const key = (native: boolean) => chunkAll(data, params, { native }).map((c) => [c.length, c.hash]);
    expect(key(true)).toEqual(key(false));
  });

  it("chunks respect min and max", () => {
    for (const c of whole.slice(0, -1)) {
      expect(c.length).toBeGreaterThanOrEqual(PUZZLEFS_CDC.min);
      expect(c.length).toBeLessThanOrEqual(PUZZLEFS_CDC.max);
    }
    expect(whole.some((c) => c.length === PUZZLEFS_CDC.max)).toBe(true);
  });

  test.prop(
    [fc.array(fc.integer({ min: 1, max: 1_500_000 }), { minLength: 1, maxLength: 30 }), fc.constantFrom(2 * PUZZLEFS_CDC.max, 2 * PUZZLEFS_CDC.max + 4097, 2 << 20), fc.boolean()],
    { numRuns: 15 },
  )("SlabCdc: any read sizes and slab sizes give the cuts of the whole buffer, each chunk in place in its slab", (sizes, slabBytes, native) => {
    const made: ArrayBuffer[] = [];
    const cdc = new SlabCdc(() => (made.push(new ArrayBuffer(slabBytes)), made.at(-1)!), PUZZLEFS_CDC, { native });
    const slabs: Slab[] = [];
    let pos = 0;
    for (let k = 0; pos < data.length; k++) {
      const dest = cdc.writable();
      expect(dest.length).toBeGreaterThan(0);
      const n = Math.min(sizes[k % sizes.length]!, dest.length, data.length - pos);
      dest.set(data.subarray(pos, pos + n));
      pos += n;
      const full = cdc.commit(n);
      if (full) slabs.push(full);
    }
    slabs.push(cdc.finish());
    // 11 MiB in slabs of at most 2 MiB: several slabs, hence several tails moved.
    expect(slabs.length).toBeGreaterThan(5);
    expect(made.length).toBe(slabs.length);
    const got = slabs.flatMap((s) => s.chunks.map((c) => new Uint8Array(s.buffer, c.start, c.length)));
    expect(got.map((c) => c.length)).toEqual(whole.map((c) => c.length));
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  it("SlabCdc refuses slabs smaller than 2 × max, and a commit beyond the writable space", () => {
    expect(() => new SlabCdc(() => new ArrayBuffer(2 * PUZZLEFS_CDC.max - 1))).toThrow(/smaller than 2 × max/);
    const cdc = new SlabCdc(() => new ArrayBuffer(2 * PUZZLEFS_CDC.max));
    expect(() => cdc.commit(2 * PUZZLEFS_CDC.max + 1)).toThrow(/writable/);
    expect(cdc.finish().chunks).toEqual([]);
  });
});
