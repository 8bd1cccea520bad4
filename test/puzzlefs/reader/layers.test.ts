import { describe, expect, it } from "vitest";
import { PfsError } from "../../../src/common/errors.ts";
import { RootfsView } from "../../../src/puzzlefs/format/view.ts";
import { LayerStack, NOT_FOUND, WHITEOUT } from "../../../src/puzzlefs/reader/layers.ts";
import { scatterEncode } from "../../helpers/capnp-writer.ts";
import { I, rootfs } from "../../helpers/test-image.ts";
import type { Inode } from "../../../src/puzzlefs/format/types.ts";

const stack = (layers: Inode[][], keepOrder = false) => new LayerStack(new RootfsView(scatterEncode(rootfs(layers, { keepOrder }), { seed: 3 }), "rootfs"));
const inoAt = (s: LayerStack, pos: number) => s.view.inoNum(s.inode(pos));

describe("reader/layers LayerStack (spec §2.4 find_inode)", () => {
  it("binary-searches each layer from the top; positions are layer base + index", () => {
    const s = stack([[I.dir(1, []), I.plain(5, "fifo")], [], [I.dir(1, []), I.plain(3, "sock"), I.plain(5, "sock"), I.plain(9, "sock")]]);
    expect(s.base).toEqual([0, 2, 2, 6]);
    expect(s.find(1)).toBe(0);
    expect(s.find(5)).toBe(1);
    expect(s.find(3)).toBe(3);
    expect([s.layerOf(3), inoAt(s, 3)]).toEqual([2, 3]);
    expect(s.find(9)).toBe(5);
    expect(s.find(4)).toBe(NOT_FOUND);
    expect(s.find(5, 1)).toBe(4); // from a lower layer
    expect(s.maxIno()).toBe(9);
  });

  it("a whiteout on top hides the lower inode", () => {
    const s = stack([[I.wht(3)], [I.plain(3, "fifo")]]);
    expect(s.find(3)).toBe(WHITEOUT);
    expect(s.find(3, 1)).toBe(1);
  });

  it("duplicate inos in one layer (upstream §8 edge case): the first non-whiteout wins", () => {
    const s = stack([[I.dir(1, []), I.wht(4), I.plain(4, "fifo"), I.wht(6), I.wht(6)]], true);
    expect(s.tag(s.find(4))).toBe(1); // fifo
    expect(s.find(6)).toBe(WHITEOUT);
  });

  it("inode numbers beyond 32 bits compare correctly", () => {
    const big = 2 ** 40 + 7;
    const s = stack([[I.dir(1, []), I.plain(2 ** 32, "fifo"), I.plain(big, "sock")]]);
    expect(inoAt(s, s.find(big))).toBe(big);
    expect(inoAt(s, s.find(2 ** 32))).toBe(2 ** 32);
    expect(s.find(2 ** 40)).toBe(NOT_FOUND);
  });

  it("a layer not sorted by ino is a FORMAT error naming it", () => {
    expect(() => stack([[I.dir(1, [])], [I.plain(7, "fifo"), I.plain(2, "fifo")]], true)).toThrow(PfsError);
    expect(() => stack([[I.dir(1, [])], [I.plain(7, "fifo"), I.plain(2, "fifo")]], true)).toThrow(
      /^rootfs metadatas\[1\] @0x[0-9a-f]+: inodes are not sorted by ino at index 1 \(ino 2 after 7\)$/,
    );
  });
});
