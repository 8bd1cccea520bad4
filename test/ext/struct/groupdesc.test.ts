import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { GROUP_DESC } from "../../../src/ext/struct/groupdesc.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("ext4_group_desc field table", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("is contiguous and 64 bytes; the 32-byte (non-64bit) part ends at bg_checksum", () => {
    expect(layoutProblems(GROUP_DESC)).toEqual([]);
    expect(GROUP_DESC.size).toBe(64);
    expect(GROUP_DESC.f.bg_checksum.off + GROUP_DESC.f.bg_checksum.size).toBe(32);
  });

  it("decodes every 32-byte descriptor mke2fs wrote to what dumpe2fs prints", () => {
    const d = ref.dumpe2fs();
    const groups = [...d.matchAll(/^Group (\d+): .*csum 0x([0-9a-f]+)/gm)];
    expect(groups.length).toBeGreaterThan(1);
    for (const m of groups) {
      const g = Number(m[1]);
      const v = new StructView(GROUP_DESC, ref.read(4096 + g * 32, 32));
      expect(v.get("bg_checksum")).toBe(parseInt(m[2]!, 16));
      const section = d.slice(m.index!, d.indexOf("\nGroup ", m.index! + 1) >>> 0 || undefined);
      expect(v.get("bg_block_bitmap_lo")).toBe(Number(/Block bitmap at (\d+)/.exec(section)![1]));
      expect(v.get("bg_inode_bitmap_lo")).toBe(Number(/Inode bitmap at (\d+)/.exec(section)![1]));
      expect(v.get("bg_inode_table_lo")).toBe(Number(/Inode table at (\d+)/.exec(section)![1]));
      expect(v.get("bg_free_blocks_count_lo")).toBe(Number(/(\d+) free blocks/.exec(section)![1]));
      expect(v.get("bg_free_inodes_count_lo")).toBe(Number(/(\d+) free inodes/.exec(section)![1]));
      expect(v.get("bg_used_dirs_count_lo")).toBe(Number(/(\d+) directories/.exec(section)![1]));
    }
  });
});
