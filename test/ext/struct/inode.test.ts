import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { GROUP_DESC } from "../../../src/ext/struct/groupdesc.ts";
import { INODE, INODE_XATTR_OFFSET } from "../../../src/ext/struct/inode.ts";
import { debugfs } from "../helpers.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("ext4_inode field table", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("is contiguous and 256 bytes: 128 base + 32 extra + 96 in-inode xattr space", () => {
    expect(layoutProblems(INODE)).toEqual([]);
    expect(INODE.size).toBe(256);
    expect(INODE.f.i_extra_isize.off).toBe(128);
    expect(INODE_XATTR_OFFSET - 128).toBe(32);
  });

  it("decodes inodes mke2fs wrote to what debugfs stat prints", () => {
    const ipg = new DataView(ref.read(1024, 1024).buffer).getUint32(0x28, true);
    for (const p of ["/", "/small", "/big", "/lnk", "/sparse"]) {
      const ino = ref.ino(p);
      const table = new StructView(GROUP_DESC, ref.read(4096 + Math.floor((ino - 1) / ipg) * 32, 32)).get("bg_inode_table_lo");
      const v = new StructView(INODE, ref.read(table * 4096 + ((ino - 1) % ipg) * 256, 256));
      const s = debugfs(ref.img, `stat ${p}`);
      expect(v.get("i_mode") & 0o7777).toBe(parseInt(/Mode:\s+(\d+)/.exec(s)![1]!, 8));
      expect(v.get("i_links_count")).toBe(Number(/Links: (\d+)/.exec(s)![1]));
      expect(v.get("i_size_lo")).toBe(Number(/Size: (\d+)/.exec(s)![1]));
      expect(v.get("i_blocks_lo")).toBe(Number(/Blockcount: (\d+)/.exec(s)![1]));
      expect(v.get("i_flags").toString(16)).toBe(/Flags: 0x([0-9a-f]+)/.exec(s)![1]);
      expect(v.get("i_extra_isize")).toBe(Number(/Size of extra inode fields: (\d+)/.exec(s)![1]));
      const csum = /Inode checksum: 0x([0-9a-f]+)/.exec(s)![1]!;
      expect(((v.get("i_checksum_hi") << 16) | v.get("l_i_checksum_lo")) >>> 0).toBe(parseInt(csum, 16));
    }
  });
});
