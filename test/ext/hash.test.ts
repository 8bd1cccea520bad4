import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DX_HASH } from "../../src/ext/constants.ts";
import { dirHash, xattrBlockHash, xattrEntryHash } from "../../src/ext/hash.ts";
import { StructView } from "../../src/ext/struct/field.ts";
import { XATTR_ENTRY, XATTR_HEADER, xattrEntryLen } from "../../src/ext/struct/xattr.ts";
import { TempDir, prng } from "./helpers.ts";
import { makeRefImage, type RefImage } from "./refimage.ts";

/** debugfs's dx_hash as an oracle: one batch of commands, one process. */
function debugfsHashes(cases: Array<{ version: number; seed: Uint32Array; name: Uint8Array }>): Array<{ hash: number; minor: number }> {
  const tmp = new TempDir();
  try {
    const lines = cases.map(({ version, seed, name }) => {
      const s = Buffer.alloc(16);
      seed.forEach((w, i) => s.writeUInt32LE(w, i * 4));
      const h = s.toString("hex");
      const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      return Buffer.concat([Buffer.from(`dx_hash -h ${version} -s ${uuid} `), Buffer.from(name), Buffer.from("\n")]);
    });
    const f = tmp.file("cmds");
    writeFileSync(f, Buffer.concat(lines));
    const out = execFileSync("debugfs", ["-f", f], { stdio: ["ignore", "pipe", "ignore"], maxBuffer: 64 << 20 }).toString("latin1");
    return [...out.matchAll(/is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)/g)].map((m) => ({ hash: parseInt(m[1]!, 16), minor: parseInt(m[2]!, 16) }));
  } finally {
    tmp.cleanup();
  }
}

/** Names debugfs's command parser passes through unchanged: no whitespace, quotes or backslash. */
function randomName(seed: number, len: number): Uint8Array {
  const raw = prng(seed, len);
  const name = raw.map((b) => (b <= 0x20 || b === 0x22 || b === 0x27 || b === 0x5c || b === 0x7f ? 0x41 + (b % 26) : b));
  if (name[0] === 0x2d || name[0] === 0x23) name[0] = 0x61; // '-' would be an option, '#' a comment
  return name;
}

describe("dirHash against debugfs dx_hash", () => {
  it("half_md4 and TEA, signed and unsigned, names of 1..255 bytes with high bytes, random and default seeds", () => {
    const cases: Array<{ version: number; seed: Uint32Array; name: Uint8Array }> = [];
    const versions = [DX_HASH.HALF_MD4, DX_HASH.HALF_MD4_UNSIGNED, DX_HASH.TEA, DX_HASH.TEA_UNSIGNED];
    for (let i = 0; i < 400; i++) {
      const len = i < 255 ? i + 1 : 1 + ((i * 37) % 255);
      const seedBytes = prng(i * 7 + 1, 16);
      const seed = i % 10 === 0 ? new Uint32Array(4) : new Uint32Array(seedBytes.buffer.slice(0));
      cases.push({ version: versions[i % 4]!, seed, name: randomName(i + 99, len) });
    }
    const want = debugfsHashes(cases);
    expect(want).toHaveLength(cases.length);
    const got = cases.map((c) => dirHash(c.version, c.name, c.seed));
    expect(got).toEqual(want);
  });

  it("signed and unsigned variants differ exactly when a name has a byte ≥ 0x80", () => {
    const seed = Uint32Array.of(1, 2, 3, 4);
    const ascii = new TextEncoder().encode("plain-ascii");
    expect(dirHash(DX_HASH.HALF_MD4, ascii, seed)).toEqual(dirHash(DX_HASH.HALF_MD4_UNSIGNED, ascii, seed));
    const high = Uint8Array.of(0x61, 0xe9, 0x62);
    expect(dirHash(DX_HASH.HALF_MD4, high, seed).hash).not.toBe(dirHash(DX_HASH.HALF_MD4_UNSIGNED, high, seed).hash);
  });

  it("always clears bit 0 of the major hash and rejects unknown versions", () => {
    for (let i = 0; i < 200; i++) expect(dirHash(DX_HASH.HALF_MD4_UNSIGNED, prng(i, 9), Uint32Array.of(i, 1, 2, 3)).hash & 1).toBe(0);
    expect(() => dirHash(DX_HASH.LEGACY, Uint8Array.of(1), new Uint32Array(4))).toThrow(RangeError);
  });
});

describe("xattr hashes against the entries mke2fs wrote", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  /** Parse entries at `off` in `buf`; values at valueBase + e_value_offs. */
  function entries(buf: Uint8Array, off: number, valueBase: number): Array<{ name: Uint8Array; value: Uint8Array; hash: number }> {
    const out = [];
    while (new DataView(buf.buffer, buf.byteOffset).getUint32(off, true) !== 0) {
      const v = new StructView(XATTR_ENTRY, buf, off);
      const nl = v.get("e_name_len");
      const name = buf.slice(off + 16, off + 16 + nl);
      const vo = valueBase + v.get("e_value_offs");
      out.push({ name, value: buf.slice(vo, vo + v.get("e_value_size")), hash: v.get("e_hash") });
      off += xattrEntryLen(nl);
    }
    return out;
  }

  it("entry hashes in an xattr block", () => {
    const out = execFileSync("debugfs", ["-R", "stat /bigxattr", ref.img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const blk = ref.block(Number(/File ACL: (\d+)/.exec(out)![1]));
    const ents = entries(blk, XATTR_HEADER.size, 0);
    expect(ents.length).toBeGreaterThan(0);
    for (const e of ents) expect(xattrEntryHash(e.name, e.value)).toBe(e.hash);
    // mke2fs leaves h_hash 0 and e2fsck never reads it; the kernel's rehash rule: any zero entry hash zeroes it.
    expect(xattrBlockHash([5, 0, 7])).toBe(0);
    expect(xattrBlockHash([5, 7])).toBe(((5 << 16) ^ 7) >>> 0);
  });

  // mke2fs leaves e_hash = 0 for in-inode entries (allowed); e2fsck checks our non-zero
  // in-inode hashes in the render tests instead.
});
