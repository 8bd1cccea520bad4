import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { decodeRootfs } from "../../../src/puzzlefs/format/decode.ts";
import { encodeRootfs } from "../../../src/puzzlefs/format/encode.ts";
import { capnpConvertComparable, comparable, decodeWithCapnpEs } from "../../helpers/capnp-oracle.ts";
import { randomRootfs, rng, scatterEncode } from "../../helpers/capnp-writer.ts";
import { ROOTFS_FIXTURES } from "../../helpers/oci-fixtures.ts";
import { ORACLE_CASES, genRootfs } from "../../helpers/rootfs-gen.ts";
import { fc, test as fcTest } from "@fast-check/vitest";
import { RootfsView } from "../../../src/puzzlefs/format/view.ts";
import { LayerStack } from "../../../src/puzzlefs/reader/layers.ts";
import { buildTreeIndex } from "../../../src/puzzlefs/reader/walk.ts";
import type { Rootfs } from "../../../src/puzzlefs/format/types.ts";
import { mutated } from "../../helpers/mutate.ts";


const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("format/decode vs oracles", () => {
  it.each(ROOTFS_FIXTURES)("%s: equals capnp-es and `capnp convert binary:json`", (_n, bytes) => {
    const mine = comparable(decodeRootfs(bytes));
    expect(mine).toEqual(comparable(decodeWithCapnpEs(bytes)));
    expect(mine).toEqual(capnpConvertComparable(bytes));
  });

  it.each(ROOTFS_FIXTURES)("%s: re-segmented by the C++ library (capnp convert --segment-size=8: far pointers) decodes the same", (_n, bytes) => {
    const multi = execFileSync("capnp", ["convert", "--segment-size=8", "binary:binary"], { input: bytes });
    expect(new DataView(multi.buffer, multi.byteOffset).getUint32(0, true)).toBeGreaterThan(3);
    expect(comparable(decodeRootfs(multi))).toEqual(comparable(decodeRootfs(bytes)));
  });

  // Golden messages written by capnp-rust (upstream's library) from seeded values, 1–10 segments (scripts/capnp-rust-oracle).
  it.each(ORACLE_CASES.map((c) => [c.seed, c] as const))("capnp-rust case %i decodes to the values it was written from", (seed, c) => {
    const bytes = execFileSync("zstd", ["-d", "-c", `test/fixtures/capnp-rust/case-${seed}.capnp.zst`], { maxBuffer: 1 << 30 });
    expect(comparable(decodeRootfs(bytes))).toEqual(comparable(genRootfs(c)));
  });

  it("decodes what the builder's encoder (format/encode.ts) writes", () => {
    for (let seed = 100; seed < 130; seed++) {
      const v = randomRootfs(seed, 40);
      expect(comparable(decodeRootfs(encodeRootfs(v))), `seed ${seed}`).toEqual(comparable(v));
    }
  });

  it("README rootfs decodes to the values of spec §6", () => {
    const r = decodeRootfs(ROOTFS_FIXTURES[0]![1]);
    expect(r.manifestVersion).toBe(3n);
    expect(r.metadatas).toHaveLength(1);
    const [i1, i2, i3, i4] = r.metadatas[0]!.inodes;
    const dec = (b: Uint8Array) => new TextDecoder().decode(b);
    expect(i1!.mode.kind === "dir" && i1!.mode.entries.map((e) => [e.ino, dec(e.name)])).toEqual([
      [2n, "algorithms"],
      [3n, "lorem_ipsum.txt"],
    ]);
    expect(i2!.mode.kind === "dir" && i2!.mode.entries.map((e) => [e.ino, dec(e.name)])).toEqual([[4n, "binary-search.txt"]]);
    expect([i1!.permissions, i2!.permissions, i3!.permissions, i4!.permissions]).toEqual([493, 509, 436, 436]);
    for (const i of [i1!, i2!, i3!, i4!]) expect([i.uid, i.gid, i.additional]).toEqual([1000, 1000, null]);
    const f = i3!.mode.kind === "file" ? i3!.mode.chunks : [];
    expect(f).toHaveLength(1);
    expect(hex(f[0]!.blob.digest)).toMatch(/^b7f1ee93.*4dbd$/);
    expect([f[0]!.blob.offset, f[0]!.blob.compressed, f[0]!.len]).toEqual([0n, false, 27n]);
    expect(i4!.mode).toEqual({ kind: "file", chunks: [] });
    expect(r.fsVerityData.map((v) => [hex(v.digest).slice(0, 8), hex(v.verity).slice(-4)])).toEqual([["b7f1ee93", "f7a4"]]);
  });

  it("random values scattered over segments (near, far, double-far, larger structs) decode exactly; capnp-es and capnp convert agree", () => {
    const stats = { near: 0, far: 0, doubleFar: 0 };
    for (let seed = 1; seed <= 60; seed++) {
      const value = randomRootfs(seed);
      const bytes = scatterEncode(value, { seed, segmentWords: 16 + (seed % 5) * 40, extraData: seed % 3 === 0 ? 2 : 0, extraPtrs: seed % 4 === 0 ? 1 : 0 }, stats);
      const want = comparable(value);
      expect(comparable(decodeRootfs(bytes)), `seed ${seed}`).toEqual(want);
      expect(comparable(decodeWithCapnpEs(bytes)), `capnp-es seed ${seed}`).toEqual(want);
      if (seed % 6 === 0) expect(capnpConvertComparable(bytes), `capnp convert seed ${seed}`).toEqual(want);
    }
    expect(stats.far).toBeGreaterThan(50);
    expect(stats.doubleFar).toBeGreaterThan(50);
  });
});

describe("format/decode hostile input", () => {
  const readme = ROOTFS_FIXTURES[0]![1];

  it("every truncation of a rootfs is a FORMAT error naming the framing or segment", () => {
    for (let n = 0; n < readme.length; n++) {
      try {
        decodeRootfs(readme.subarray(0, n), "rootfs X");
        expect.unreachable(`prefix ${n} decoded`);
      } catch (e) {
        expect(e, `prefix ${n}`).toBeInstanceOf(PfsError);
        expect((e as PfsError).code).toBe(ErrorCode.FORMAT);
        expect((e as PfsError).message).toMatch(/^rootfs X (framing|segment 0)( @0x[0-9a-f]+)?: truncated/);
      }
    }
  });

  it("garbage and single-byte corruptions never crash: they decode or fail with a PfsError", () => {
    const r = rng(42);
    let failures = 0;
    for (let k = 0; k < 3000; k++) {
      const b = Uint8Array.from(ROOTFS_FIXTURES[k % ROOTFS_FIXTURES.length]![1]);
      const flips = 1 + Math.floor(r() * 3);
      for (let f = 0; f < flips; f++) b[8 + Math.floor(r() * (b.length - 8))] = Math.floor(r() * 256);
      try {
        decodeRootfs(b);
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        expect([ErrorCode.FORMAT, ErrorCode.LIMIT]).toContain(e.code);
        failures++;
      }
    }
    for (let k = 0; k < 500; k++) {
      const b = Uint8Array.from({ length: 8 + Math.floor(r() * 200) }, () => Math.floor(r() * 256));
      b.fill(0, 0, 4); // one segment, so the framing is plausible and the pointers get exercised
      new DataView(b.buffer).setUint32(4, (b.length - 8) >> 3, true);
      try {
        decodeRootfs(b.subarray(0, 8 + ((b.length - 8) & ~7)));
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(100);
  });

  /** Objects a decoded rootfs holds: what the decoder allocated per element. */
  const objects = (r: Rootfs) =>
    r.fsVerityData.length +
    r.metadatas.reduce(
      (n, m) =>
        n +
        1 +
        m.inodes.reduce((k, i) => {
          const mode = i.mode;
          const inner = mode.kind === "dir" ? mode.entries.length : mode.kind === "file" ? mode.chunks.length : 0;
          return k + 1 + inner + (i.additional?.xattrs.length ?? 0);
        }, 0),
      0,
    );
  const bases = [...ROOTFS_FIXTURES.map(([, b]) => b), encodeRootfs(genRootfs(ORACLE_CASES[0]!)), scatterEncode(randomRootfs(7), { seed: 3, far: 0.5, segmentWords: 32 })];

  fcTest.prop([fc.constantFrom(...bases).chain((b) => mutated(b))], { numRuns: 600 })(
    "mutated rootfs messages (truncations, bit flips, splices, huge counts) decode or fail with FORMAT/LIMIT, allocating at most ~the traversal budget",
    (bytes) => {
      let r: Rootfs;
      try {
        r = decodeRootfs(bytes, "rootfs M");
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        expect([ErrorCode.FORMAT, ErrorCode.LIMIT]).toContain(e.code);
        expect(e.message).toMatch(/^rootfs M /);
        expect(e.message).not.toContain("\n");
        return;
      }
      // The traversal budget (max(64 Ki, 8 × message words)) bounds the work and the objects of one decode.
      const words = Math.max(0, (bytes.length - 8) / 8);
      expect(objects(r)).toBeLessThanOrEqual(Math.max(1 << 16, 8 * words));
    },
  );

  fcTest.prop([fc.constantFrom(...bases).chain((b) => mutated(b))], { numRuns: 400 })(
    "the reader's load path (view, layer stack, tree index) on mutated messages: a typed error or an index no larger than the message allows",
    (bytes) => {
      try {
        const view = new RootfsView(bytes, "rootfs M");
        const stack = new LayerStack(view);
        view.msg.resetBudget();
        const index = buildTreeIndex(stack, { maxDepth: 64 });
        expect(index.reachable.length).toBe(stack.total);
        expect(stack.total).toBeLessThanOrEqual(Math.max(1 << 16, 8 * view.msg.words));
        expect(index.nodeCount).toBeLessThanOrEqual(stack.total + 1);
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        expect([ErrorCode.FORMAT, ErrorCode.LIMIT]).toContain(e.code);
      }
    },
  );
});
