import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  crc32c,
  crc32cRaw,
  csumSeed,
  setBlockBitmapCsum,
  setDirBlockCsum,
  setDxCsum,
  setExtentBlockCsum,
  setGroupDescCsum,
  setInodeBitmapCsum,
  setInodeCsum,
  setSuperblockCsum,
  setXattrBlockCsum,
  verifyBlockBitmapCsum,
  verifyDirBlockCsum,
  verifyDxCsum,
  verifyExtentBlockCsum,
  verifyGroupDescCsum,
  verifyInodeBitmapCsum,
  verifyInodeCsum,
  verifySuperblockCsum,
  verifyXattrBlockCsum,
} from "../../src/ext/csum.ts";
import { StructView } from "../../src/ext/struct/field.ts";
import { GROUP_DESC } from "../../src/ext/struct/groupdesc.ts";
import { INODE } from "../../src/ext/struct/inode.ts";
import { SUPERBLOCK } from "../../src/ext/struct/superblock.ts";
import { debugfs } from "./helpers.ts";
import { makeRefImage, type RefImage } from "./refimage.ts";

/** RFC 3720 §B.4 CRC-32C test vectors, plus the common "123456789" check value. */
describe("crc32c", () => {
  it("matches RFC 3720 B.4 and the 123456789 check value", () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    const pdu = Uint8Array.from([
      0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect(crc32c(pdu)).toBe(0xd9963a56);
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  it("gives the same result in one pass or split at every byte boundary (slicing-by-8 vs bytewise tail)", () => {
    const data = Uint8Array.from({ length: 257 }, (_, i) => (i * 73 + 11) & 0xff);
    const whole = crc32cRaw(0xffffffff, data);
    for (let cut = 0; cut <= data.length; cut++) {
      expect(crc32cRaw(crc32cRaw(0xffffffff, data, 0, cut), data, cut)).toBe(whole);
    }
  });
});

describe("metadata_csum set/verify pairs against an image mke2fs wrote", () => {
  let ref: RefImage;
  let seed: number;
  let sb: Uint8Array;
  let ipg: number;
  let groups: number;
  const desc = (g: number): Uint8Array => ref.read(4096 + g * 32, 32);
  const inode = (ino: number): Uint8Array => {
    const g = Math.floor((ino - 1) / ipg);
    const table = new StructView(GROUP_DESC, desc(g)).get("bg_inode_table_lo");
    return ref.read(table * 4096 + ((ino - 1) % ipg) * 256, 256);
  };
  const gen = (ino: number): number => new StructView(INODE, inode(ino)).get("i_generation");
  /** Zero `bytes` at `off`, run `set`, and expect the original bytes back. */
  const resets = (orig: Uint8Array, off: number, bytes: number, set: (b: Uint8Array) => void): void => {
    const b = orig.slice();
    b.fill(0, off, off + bytes);
    set(b);
    expect(Buffer.from(b).equals(Buffer.from(orig))).toBe(true);
  };

  beforeAll(() => {
    ref = makeRefImage();
    sb = ref.read(1024, 1024);
    const v = new StructView(SUPERBLOCK, sb);
    seed = csumSeed(v.bytes("s_uuid"));
    ipg = v.get("s_inodes_per_group");
    groups = Math.ceil(v.get("s_blocks_count_lo") / v.get("s_blocks_per_group"));
  });
  afterAll(() => ref?.dir.cleanup());

  it("superblock", () => {
    expect(verifySuperblockCsum(sb)).toBe(true);
    resets(sb, SUPERBLOCK.f.s_checksum.off, 4, setSuperblockCsum);
    const bad = sb.slice();
    bad[0x10]! ^= 1;
    expect(verifySuperblockCsum(bad)).toBe(false);
  });

  it("group descriptors and both bitmaps of every initialized group", () => {
    let checked = 0;
    for (let g = 0; g < groups; g++) {
      const d = desc(g);
      expect(verifyGroupDescCsum(seed, g, d)).toBe(true);
      resets(d, GROUP_DESC.f.bg_checksum.off, 2, (b) => setGroupDescCsum(seed, g, b));
      expect(verifyGroupDescCsum(seed, g + 1, d)).toBe(false);
      const v = new StructView(GROUP_DESC, d);
      const flags = v.get("bg_flags");
      if (!(flags & 2)) {
        const bb = ref.block(v.get("bg_block_bitmap_lo"));
        expect(verifyBlockBitmapCsum(seed, d, bb)).toBe(true);
        resets(d, GROUP_DESC.f.bg_block_bitmap_csum_lo.off, 2, (b) => setBlockBitmapCsum(seed, b, bb));
        checked++;
      }
      if (!(flags & 1)) {
        const ib = ref.block(v.get("bg_inode_bitmap_lo"));
        expect(verifyInodeBitmapCsum(seed, d, ib, ipg)).toBe(true);
        resets(d, GROUP_DESC.f.bg_inode_bitmap_csum_lo.off, 2, (b) => setInodeBitmapCsum(seed, b, ib, ipg));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1);
  });

  it("inodes, reserved ones included", () => {
    for (const p of ["/", "/big", "/small", "/bigxattr", "/sparse", "/lnk", "/lost+found"]) {
      const ino = ref.ino(p);
      const b = inode(ino);
      expect(verifyInodeCsum(seed, ino, b)).toBe(true);
      resets(b, INODE.f.l_i_checksum_lo.off, 2, (x) => setInodeCsum(seed, ino, x));
      resets(b, INODE.f.i_checksum_hi.off, 2, (x) => setInodeCsum(seed, ino, x));
      expect(verifyInodeCsum(seed, ino + 1, b)).toBe(false);
    }
    for (let ino = 1; ino < 11; ino++) if (ino !== 2) expect(verifyInodeCsum(seed, ino, inode(ino))).toBe(true);
  });

  it("linear directory leaves and the dirent tail", () => {
    const ino = 2;
    const blk = ref.block(ref.blocks("/")[0]!);
    expect(verifyDirBlockCsum(seed, ino, gen(ino), blk)).toBe(true);
    resets(blk, 4096 - 4, 4, (b) => setDirBlockCsum(seed, ino, gen(ino), b));
    expect(verifyDirBlockCsum(seed, ino + 1, gen(ino), blk)).toBe(false);
  });

  it("htree root, index nodes and leaves (dx_tail and dirent tail)", () => {
    const ino = ref.ino("/big");
    const g = gen(ino);
    const blocks = ref.blocks("/big");
    expect(blocks.length).toBeGreaterThan(2);
    const root = ref.block(blocks[0]!);
    expect(verifyDxCsum(seed, ino, g, root, 0x20)).toBe(true);
    let leaves = 0;
    for (const n of blocks.slice(1)) {
      const b = ref.block(n);
      const dv = new DataView(b.buffer);
      if (dv.getUint32(0, true) === 0 && dv.getUint16(4, true) === 4096) expect(verifyDxCsum(seed, ino, g, b, 0x8)).toBe(true);
      else {
        expect(verifyDirBlockCsum(seed, ino, g, b)).toBe(true);
        leaves++;
      }
    }
    expect(leaves).toBeGreaterThan(1);
    const limit = new DataView(root.buffer).getUint16(0x20, true);
    resets(root, 0x20 + limit * 8 + 4, 4, (b) => setDxCsum(seed, ino, g, b, 0x20));
  });

  it("extent tree blocks", () => {
    const ino = ref.ino("/sparse");
    const m = /\(ETB0\):(\d+)/.exec(debugfs(ref.img, "stat /sparse"));
    expect(m).not.toBeNull();
    const blk = ref.block(Number(m![1]));
    expect(verifyExtentBlockCsum(seed, ino, gen(ino), blk)).toBe(true);
    const max = new DataView(blk.buffer).getUint16(4, true);
    resets(blk, 12 + 12 * max, 4, (b) => setExtentBlockCsum(seed, ino, gen(ino), b));
    expect(verifyExtentBlockCsum(seed, ino, gen(ino) + 1, blk)).toBe(false);
  });

  it("xattr blocks (seeded with the block number, not the inode)", () => {
    const ino = ref.ino("/bigxattr");
    const acl = new StructView(INODE, inode(ino)).get("i_file_acl_lo");
    expect(acl).toBeGreaterThan(0);
    const blk = ref.block(acl);
    expect(verifyXattrBlockCsum(seed, acl, blk)).toBe(true);
    resets(blk, 0x10, 4, (b) => setXattrBlockCsum(seed, acl, b));
    expect(verifyXattrBlockCsum(seed, acl + 1, blk)).toBe(false);
  });
});
