import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIRENT, DIRENT_TAIL, DIRENT_TAIL_FT, direntLen, writeDirent, writeDirentTail } from "../../../src/ext/struct/dirent.ts";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { debugfs } from "../helpers.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("directory entries", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("are contiguous: 8-byte header, 12-byte tail; records pad names to 4 bytes", () => {
    expect(layoutProblems(DIRENT)).toEqual([]);
    expect(layoutProblems(DIRENT_TAIL)).toEqual([]);
    expect([direntLen(1), direntLen(2), direntLen(4), direntLen(5), direntLen(255)]).toEqual([12, 12, 12, 16, 264]);
  });

  it("decode the root directory block mke2fs wrote to what debugfs ls prints", () => {
    const blk = ref.block(ref.blocks("/")[0]!);
    const got: string[] = [];
    let off = 0;
    while (off < 4096 - DIRENT_TAIL.size) {
      const d = new StructView(DIRENT, blk, off);
      if (d.get("inode") !== 0) got.push(`${d.get("inode")}:${Buffer.from(blk.subarray(off + 8, off + 8 + d.get("name_len"))).toString()}`);
      off += d.get("rec_len");
    }
    expect(off).toBe(4096 - DIRENT_TAIL.size);
    const t = new StructView(DIRENT_TAIL, blk, off);
    expect([t.get("det_reserved_zero1"), t.get("det_rec_len"), t.get("det_reserved_ft")]).toEqual([0, 12, DIRENT_TAIL_FT]);
    const want = [...debugfs(ref.img, "ls -p /").matchAll(/^\/(\d+)\/\d+\/\d+\/\d+\/([^/]*)\//gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(got.sort()).toEqual(want.sort());
  });

  it("writers lay out a record and the tail", () => {
    const b = new Uint8Array(4096);
    writeDirent(b, 0, 12, 16, new TextEncoder().encode("hello"), 1);
    writeDirentTail(b, 4096);
    const d = new StructView(DIRENT, b);
    expect([d.get("inode"), d.get("rec_len"), d.get("name_len"), d.get("file_type")]).toEqual([12, 16, 5, 1]);
    expect(Buffer.from(b.subarray(8, 13)).toString()).toBe("hello");
    expect([...b.subarray(4084, 4092)]).toEqual([0, 0, 0, 0, 12, 0, 0, 0xde]);
  });
});
