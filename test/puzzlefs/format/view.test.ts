import { describe, expect, it } from "vitest";
import { RootfsView } from "../../../src/puzzlefs/format/view.ts";
import { scatterEncode } from "../../helpers/capnp-writer.ts";
import { ROOTFS_FIXTURES } from "../../helpers/oci-fixtures.ts";
import { I, rootfs } from "../../helpers/test-image.ts";

describe("format/view RootfsView", () => {
  it("exposes layers, inode fields and payloads of the mixed fixture in place", () => {
    const v = new RootfsView(ROOTFS_FIXTURES[4]![1], "mixed");
    expect([v.manifestVersion, v.layers.length, v.layers[0]!.count]).toEqual([3n, 1, 9]);
    const inos = Array.from({ length: 9 }, (_, i) => v.inoNum(v.inode(0, i)));
    expect(inos).toEqual([1, 2, 4, 5, 6, 7, 8, 9, 10]);
    expect(Array.from({ length: 9 }, (_, i) => v.tagAt(0, i))).toEqual([3, 5, 3, 6, 5, 5, 5, 1, 2]);
    const chr = v.inode(0, 8);
    expect([v.device(chr), v.permissions(chr), v.uid(chr)]).toEqual([{ major: 1n, minor: 3n }, 0o666, 0]);
    expect(v.compareIno(0, 3, 0, 5)).toBe(0);
    expect(v.compareIno(0, 3, 0, 6)).toBe(-1);
    expect(v.compareIno(0, 3, 1, 0)).toBe(-1);
    const z = v.inode(0, 4);
    const a = v.additional(z)!;
    expect(v.symlinkTarget(a)).toBeNull();
    const x = v.xattrList(a)!;
    expect(v.pair(v.msg.element(x, 0), "Xattr").map((b) => Buffer.from(b).toString())).toEqual(["user.k", "v"]);
    expect(v.verityList()!.count).toBe(4);
  });

  it("reads structs written by a newer, larger schema (extra fields are ignored)", () => {
    const bytes = scatterEncode(rootfs([[I.dir(1, [["a", 2]]), I.dev(2, "blk", 8, 1, { uid: 7 })]]), { seed: 5, extraData: 3, extraPtrs: 2 });
    const v = new RootfsView(bytes, "r");
    expect(v.layers[0]!.stride).toBe((3 + 3 + 2 + 2) * 8);
    const blk = v.inode(0, 1);
    expect([v.tagAt(0, 1), v.uid(blk), v.device(blk)]).toEqual([4, 7, { major: 8n, minor: 1n }]);
  });

  it("an empty message has no Rootfs", () => {
    expect(() => new RootfsView(new Uint8Array(8), "r")).toThrow(/^r @0x0: empty message: no Rootfs$/);
  });
});
