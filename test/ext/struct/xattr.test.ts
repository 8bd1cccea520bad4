import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StructView, layoutProblems } from "../../../src/ext/struct/field.ts";
import { xattrEntryHash } from "../../../src/ext/hash.ts";
import {
  XATTR_ENTRY,
  XATTR_HEADER,
  XATTR_IBODY_HEADER,
  XATTR_MAGIC,
  encodeIbodyXattrs,
  encodeXattrBlock,
  xattrEntryLen,
  xattrSpace,
  type XattrRecord,
} from "../../../src/ext/struct/xattr.ts";
import { debugfs } from "../helpers.ts";
import { makeRefImage, type RefImage } from "../refimage.ts";

const enc = new TextEncoder();
const PREFIX: Record<number, string> = { 1: "user.", 4: "trusted.", 6: "security." };

/** Entries of a block or ibody area as "prefix+name=value". */
function decode(buf: Uint8Array, entriesOff: number, valueBase: number): string[] {
  const out: string[] = [];
  let off = entriesOff;
  while (new DataView(buf.buffer, buf.byteOffset).getUint32(off, true) !== 0) {
    const e = new StructView(XATTR_ENTRY, buf, off);
    const nl = e.get("e_name_len");
    const name = Buffer.from(buf.subarray(off + 16, off + 16 + nl)).toString();
    const vo = valueBase + e.get("e_value_offs");
    const value = Buffer.from(buf.subarray(vo, vo + e.get("e_value_size")));
    expect(e.get("e_hash")).toBe(xattrEntryHash(buf.subarray(off + 16, off + 16 + nl), value));
    out.push(`${PREFIX[e.get("e_name_index")]}${name}=${value.toString()}`);
    off += xattrEntryLen(nl);
  }
  return out;
}

describe("xattr structures", () => {
  let ref: RefImage;
  beforeAll(() => {
    ref = makeRefImage();
  });
  afterAll(() => ref?.dir.cleanup());

  it("are contiguous: 4-byte ibody header, 32-byte block header, 16-byte entry", () => {
    for (const s of [XATTR_IBODY_HEADER, XATTR_HEADER, XATTR_ENTRY]) expect(layoutProblems(s)).toEqual([]);
    expect([XATTR_IBODY_HEADER.size, XATTR_HEADER.size, XATTR_ENTRY.size]).toEqual([4, 32, 16]);
    expect([xattrEntryLen(1), xattrEntryLen(4), xattrEntryLen(5)]).toEqual([20, 20, 24]);
  });

  it("decode the xattr block mke2fs wrote to entries debugfs ea_list shows", () => {
    const acl = Number(/File ACL: (\d+)/.exec(debugfs(ref.img, "stat /bigxattr"))![1]);
    const blk = ref.block(acl);
    expect(new StructView(XATTR_HEADER, blk).get("h_magic")).toBe(XATTR_MAGIC);
    const list = debugfs(ref.img, "ea_list /bigxattr");
    const got = decode(blk, 32, 0);
    expect(got.length).toBeGreaterThan(0);
    for (const e of got) expect(list).toContain(`${e.split("=")[0]} (${e.split("=")[1]!.length})`);
  });

  it("encoders lay out entries and values so they decode back, in the inode body and in a block", () => {
    const recs: XattrRecord[] = [
      { index: 1, name: enc.encode("a"), value: enc.encode("1") },
      { index: 6, name: enc.encode("selinux"), value: enc.encode("ctx_t") },
      { index: 1, name: enc.encode("e"), value: new Uint8Array() },
    ];
    expect(xattrSpace(recs)).toBe(4 + 20 + 24 + 20 + 4 + 8);
    const body = new Uint8Array(96);
    encodeIbodyXattrs(body, recs);
    expect(new StructView(XATTR_IBODY_HEADER, body).get("h_magic")).toBe(XATTR_MAGIC);
    expect(decode(body, 4, 4)).toEqual(["user.a=1", "security.selinux=ctx_t", "user.e="]);
    const blk = new Uint8Array(4096);
    encodeXattrBlock(blk, recs, 3);
    const h = new StructView(XATTR_HEADER, blk);
    expect([h.get("h_magic"), h.get("h_refcount"), h.get("h_blocks")]).toEqual([XATTR_MAGIC, 3, 1]);
    expect(decode(blk, 32, 0)).toEqual(["user.a=1", "security.selinux=ctx_t", "user.e="]);
    expect(() => encodeIbodyXattrs(new Uint8Array(96), [{ index: 1, name: enc.encode("x"), value: new Uint8Array(80) }])).toThrow(RangeError);
  });
});
