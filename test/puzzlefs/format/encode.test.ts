import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { encodeRootfs } from "../../../src/puzzlefs/format/encode.ts";
import type { Inode, InodeMode, Rootfs } from "../../../src/puzzlefs/format/types.ts";
import { capnpConvertDecode, capnpEsDecode } from "../../helpers/rootfs-oracles.ts";
import { ORACLE_CASES, genRootfs } from "../../helpers/rootfs-gen.ts";

const hex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const utf8 = (s: string) => new Uint8Array(Buffer.from(s));

/** Segment count and word counts from the stream framing. */
function segments(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0, true) + 1;
  return Array.from({ length: n }, (_, i) => dv.getUint32(4 + 4 * i, true));
}

function fileInode(ino: bigint, chunks: Array<[string, bigint, bigint]>): Inode {
  return {
    ino,
    mode: { kind: "file", chunks: chunks.map(([d, offset, len]) => ({ blob: { digest: hex(d), offset, compressed: false }, len })) },
    uid: 1000,
    gid: 1000,
    permissions: 0o664,
    additional: null,
  };
}

describe("encodeRootfs: upstream vectors (spec §6)", () => {
  it("reproduces the README example rootfs byte for byte from its values", () => {
    const blob = "b7f1ee9373416a49835747455ec4d287bcccc5a4bf8c38156483d46b35ce4dbd";
    const dir = (ino: bigint, perm: number, entries: Array<[bigint, string]>): Inode => ({
      ino,
      mode: { kind: "dir", lookBelow: false, entries: entries.map(([i, n]) => ({ ino: i, name: utf8(n) })) },
      uid: 1000,
      gid: 1000,
      permissions: perm,
      additional: null,
    });
    const rootfs: Rootfs = {
      manifestVersion: 3n,
      metadatas: [
        {
          inodes: [
            dir(1n, 493, [[2n, "algorithms"], [3n, "lorem_ipsum.txt"]]),
            dir(2n, 509, [[4n, "binary-search.txt"]]),
            fileInode(3n, [[blob, 0n, 27n]]),
            fileInode(4n, []),
          ],
        },
      ],
      fsVerityData: [{ digest: hex(blob), verity: hex("5b1434ad2c081ff435b210792e900e27021ec42b68e68f62dbad52dfe0c9f7a4") }],
    };
    const out = encodeRootfs(rootfs);
    const want = readFileSync("test/fixtures/readme-example-rootfs.capnp");
    expect(out.length).toBe(552);
    expect(sha256(out)).toBe("9e2edc6917b65606b1112ac8663665dfd2d945cfea960ca595accf790922b910");
    expect(Buffer.from(out).equals(want)).toBe(true);
  });

  // Golden bytes from capnp-rust itself (scripts/capnp-rust-oracle), 1–10 segments.
  it.each(ORACLE_CASES.map((c) => [c.seed, c] as const))("matches capnp-rust byte for byte on generated case %i", (seed, c) => {
    const want = execFileSync("zstd", ["-d", "-c", `test/fixtures/capnp-rust/case-${seed}.capnp.zst`], { maxBuffer: 1 << 30 });
    const out = encodeRootfs(genRootfs(c));
    expect(segments(out)).toEqual(segments(want));
    expect(out.length).toBe(want.length);
    expect(Buffer.from(out).equals(want)).toBe(true);
  });

  const fixtures = readdirSync("test/fixtures/oci");
  it.each(fixtures)("re-encodes the rootfs blobs of fixtures/oci/%s identically", (name) => {
    const dir = join("test/fixtures/oci", name, "blobs/sha256");
    let rootfsBlobs = 0;
    for (const f of readdirSync(dir)) {
      const text = readFileSync(join(dir, f));
      if (text[0] !== 0x7b) continue; // not JSON
      const m = JSON.parse(text.toString("utf8"));
      if (!m.layers) continue;
      const d = (m.layers[0].digest as string).slice("sha256:".length);
      const bytes = readFileSync(join(dir, d));
      const values = capnpEsDecode(bytes);
      expect(values).toEqual(capnpConvertDecode(bytes));
      const again = encodeRootfs(values);
      expect(sha256(again)).toBe(d);
      rootfsBlobs++;
    }
    expect(rootfsBlobs).toBeGreaterThan(0);
  });
});

// Random domain values, shaped like what the builder produces.
const bytesArb = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const modeArb: fc.Arbitrary<InodeMode> = fc.oneof(
  fc.constantFrom<InodeMode>({ kind: "unknown" }, { kind: "fifo" }, { kind: "lnk" }, { kind: "sock" }, { kind: "wht" }),
  fc.record({ kind: fc.constantFrom("chr" as const, "blk" as const), major: u64, minor: u64 }),
  fc.record({
    kind: fc.constant("dir" as const),
    lookBelow: fc.boolean(),
    entries: fc.array(fc.record({ ino: u64, name: bytesArb(40) }), { maxLength: 12 }),
  }),
  fc.record({
    kind: fc.constant("file" as const),
    chunks: fc.array(
      fc.record({
        blob: fc.record({ digest: fc.uint8Array({ minLength: 32, maxLength: 32 }), offset: u64, compressed: fc.boolean() }),
        len: u64,
      }),
      { maxLength: 6 },
    ),
  }),
);
const inodeArb: fc.Arbitrary<Inode> = fc.record({
  ino: u64,
  mode: modeArb,
  uid: fc.nat({ max: 0xffffffff }),
  gid: fc.nat({ max: 0xffffffff }),
  permissions: fc.nat({ max: 0xffff }),
  additional: fc.option(
    fc.record({
      xattrs: fc.array(fc.record({ key: bytesArb(30), val: bytesArb(300) }), { maxLength: 4 }),
      symlinkTarget: fc.option(bytesArb(200), { nil: null }),
    }),
    { nil: null },
  ),
});
const rootfsArb: fc.Arbitrary<Rootfs> = fc.record({
  metadatas: fc.array(fc.record({ inodes: fc.array(inodeArb, { maxLength: 120 }) }), { maxLength: 4 }),
  fsVerityData: fc.array(
    fc.record({ digest: fc.uint8Array({ minLength: 32, maxLength: 32 }), verity: fc.uint8Array({ minLength: 32, maxLength: 32 }) }),
    { maxLength: 40 },
  ),
  manifestVersion: u64,
});

describe("encodeRootfs: decoders we did not write read back exactly what we encoded", () => {
  test.prop([rootfsArb], { numRuns: 150 })("capnp-es", (r) => {
    expect(capnpEsDecode(encodeRootfs(r))).toEqual(r);
  });

  test.prop([rootfsArb], { numRuns: 15 })("capnp convert (C++)", (r) => {
    expect(capnpConvertDecode(encodeRootfs(r))).toEqual(r);
  });

  it("spills into several segments with far pointers and landing pads, as capnp-rust does", () => {
    // 3000 inodes: the 15001-word inode list cannot fit segment 0 (1024 words).
    const inodes: Inode[] = [];
    for (let i = 1; i <= 3000; i++) {
      const ino = BigInt(i);
      const kind = i % 5;
      const base = { ino, uid: i, gid: 2 * i, permissions: 0o644 };
      if (kind === 0) inodes.push({ ...base, mode: { kind: "chr", major: 1n, minor: ino }, additional: null });
      else if (kind === 1)
        inodes.push({ ...base, mode: { kind: "dir", lookBelow: false, entries: [{ ino: ino + 1n, name: utf8(`e${i}`) }] }, additional: null });
      else if (kind === 2)
        inodes.push({ ...base, mode: { kind: "lnk" }, additional: { xattrs: [{ key: utf8("user.x"), val: new Uint8Array() }], symlinkTarget: utf8(`t/${i}`) } });
      else inodes.push(fileInode(ino, [["11".repeat(32), ino, 7n]]));
    }
    const r: Rootfs = { manifestVersion: 3n, metadatas: [{ inodes }], fsVerityData: [] };
    const out = encodeRootfs(r);
    const segs = segments(out);
    // Segment 0 = 1024 words; segment 1 is created for the 15001-word list plus
    // its landing pad with max(15002, next=2048) words and holds only it.
    expect(segs[0]).toBe(1024);
    expect(segs[1]).toBe(15002);
    expect(segs.length).toBeGreaterThan(2);
    expect(capnpEsDecode(out)).toEqual(r);
    expect(capnpConvertDecode(out)).toEqual(r);
  });

  it("rejects values the schema cannot hold", () => {
    const bad = (n: Partial<Inode>): Rootfs => ({
      manifestVersion: 3n,
      metadatas: [{ inodes: [{ ino: 1n, mode: { kind: "fifo" }, uid: 0, gid: 0, permissions: 0, additional: null, ...n }] }],
      fsVerityData: [],
    });
    expect(() => encodeRootfs(bad({ uid: 2 ** 32 }))).toThrow(/uid/);
    expect(() => encodeRootfs(bad({ permissions: 0x10000 }))).toThrow(/permissions/);
  });

  it("encodes 100 000 inodes in linear time (output decodes)", () => {
    const inodes: Inode[] = [];
    for (let i = 1; i <= 100_000; i++) inodes.push(fileInode(BigInt(i), [["22".repeat(32), 0n, 10n]]));
    const out = encodeRootfs({ manifestVersion: 3n, metadatas: [{ inodes }], fsVerityData: [] });
    const back = capnpEsDecode(out);
    expect(back.metadatas[0]!.inodes.length).toBe(100_000);
    expect(back.metadatas[0]!.inodes[99_999]).toEqual(inodes[99_999]);
  });
});
