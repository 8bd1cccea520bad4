import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DX_ENTRY, DX_NODE, DX_NODE_COUNT_OFFSET, DX_ROOT, DX_ROOT_COUNT_OFFSET, DX_TAIL, dxLimit, writeDxEntries, writeDxNodeHeader } from "../../../src/ext/struct/dx.ts";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { debugfs } from "../helpers.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

describe("htree index structures", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("are contiguous, and leave 507 (root) / 510 (node) entries before the dx_tail in 4 KiB", () => {
    for (const s of [DX_ROOT, DX_NODE, DX_ENTRY, DX_TAIL]) expect(layoutProblems(s)).toEqual([]);
    expect(DX_ROOT.f.limit.off).toBe(DX_ROOT_COUNT_OFFSET);
    expect(DX_NODE.f.limit.off).toBe(DX_NODE_COUNT_OFFSET);
    expect(dxLimit(4096, DX_ROOT_COUNT_OFFSET)).toBe(507);
    expect(dxLimit(4096, DX_NODE_COUNT_OFFSET)).toBe(510);
  });

  it("decode the dx_root e2fsck -D wrote to what debugfs htree_dump prints", () => {
    const root = ref.block(ref.blocks("/big")[0]!);
    const v = new StructView(DX_ROOT, root);
    const dump = debugfs(ref.img, "htree_dump /big");
    expect(v.get("hash_version")).toBe(Number(/Hash Version: (\d+)/.exec(dump)![1]));
    expect(v.get("indirect_levels")).toBe(Number(/Indirect levels: (\d+)/.exec(dump)![1]));
    expect(v.get("limit")).toBe(Number(/Number of entries \(limit\): (\d+)/.exec(dump)![1]));
    expect(v.get("count")).toBe(Number(/Number of entries \(count\): (\d+)/.exec(dump)![1]));
    const want = [...dump.slice(0, dump.indexOf("\n\n")).matchAll(/Entry #(\d+): Hash 0x([0-9a-f]+), block (\d+)/g)].map((m) => [parseInt(m[2]!, 16), Number(m[3])]);
    const got = want.map((_, i) => {
      const e = new StructView(DX_ENTRY, root, DX_ROOT_COUNT_OFFSET + i * 8);
      return [i === 0 ? 0 : e.get("hash"), e.get("block")];
    });
    expect(got).toEqual(want);
  });

  it("writeDxEntries fills count/limit, entry 0's block, later entries and a zeroed tail", () => {
    const b = new Uint8Array(4096).fill(0xaa);
    writeDxNodeHeader(b);
    writeDxEntries(b, DX_NODE_COUNT_OFFSET, 3, (i) => i * 100, (i) => i + 7);
    const n = new StructView(DX_NODE, b);
    expect([n.get("fake_inode"), n.get("fake_rec_len"), n.get("limit"), n.get("count"), n.get("block")]).toEqual([0, 4096, 510, 3, 7]);
    expect([new StructView(DX_ENTRY, b, 0x10).get("hash"), new StructView(DX_ENTRY, b, 0x18).get("block")]).toEqual([100, 9]);
    expect([...b.subarray(4088)].every((x) => x === 0)).toBe(true);
  });
});
