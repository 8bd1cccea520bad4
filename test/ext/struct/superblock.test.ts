import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { SUPERBLOCK, SUPERBLOCK_OFFSET } from "../../../src/ext/struct/superblock.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("ext4_super_block field table", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("is contiguous and 1024 bytes, with s_checksum last", () => {
    expect(layoutProblems(SUPERBLOCK)).toEqual([]);
    expect(SUPERBLOCK.size).toBe(1024);
    expect(SUPERBLOCK.f.s_checksum.off).toBe(0x3fc);
  });

  it("decodes a superblock mke2fs wrote to the values dumpe2fs prints", () => {
    const v = new StructView(SUPERBLOCK, ref.read(SUPERBLOCK_OFFSET, 1024));
    const d = ref.dumpe2fs();
    const field = (label: string): number => Number(new RegExp(`^${label}:\\s+(\\d+)`, "m").exec(d)![1]);
    expect(v.get("s_magic")).toBe(0xef53);
    expect(v.get("s_inodes_count")).toBe(field("Inode count"));
    expect(v.get("s_blocks_count_lo")).toBe(field("Block count"));
    expect(v.get("s_free_blocks_count_lo")).toBe(field("Free blocks"));
    expect(v.get("s_free_inodes_count")).toBe(field("Free inodes"));
    expect(v.get("s_inodes_per_group")).toBe(field("Inodes per group"));
    expect(v.get("s_blocks_per_group")).toBe(field("Blocks per group"));
    expect(v.get("s_first_ino")).toBe(field("First inode"));
    expect(v.get("s_inode_size")).toBe(Number(/^Inode size:\s+(\d+)/m.exec(d)![1]));
    expect(v.get("s_want_extra_isize")).toBe(field("Desired extra isize"));
    expect(1024 << v.get("s_log_block_size")).toBe(field("Block size"));
    const uuid = Buffer.from(v.bytes("s_uuid")).toString("hex");
    expect(/^Filesystem UUID:\s+(\S+)/m.exec(d)![1]!.replace(/-/g, "")).toBe(uuid);
    expect(v.get("s_checksum").toString(16).padStart(8, "0")).toBe(/^Checksum:\s+0x(\S+)/m.exec(d)![1]);
  });
});
