import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ErrorCode, isPfsError } from "../../../src/common/errors.ts";
import { BLOCK_SPACE, IBODY_SPACE, XATTR_BLOCK, XATTR_IBODY, XATTR_NONE, XattrBlocks, aclToDisk, canonicalXattrs, xattrKey, xattrPlacement } from "../../../src/ext/layout/xattrs.ts";
import { StructView } from "../../../src/ext/struct/field.ts";
import { GROUP_DESC } from "../../../src/ext/struct/groupdesc.ts";
import { INODE } from "../../../src/ext/struct/inode.ts";
import { XATTR_ENTRY, xattrEntryLen, xattrSpace } from "../../../src/ext/struct/xattr.ts";
import { TempDir, debugfs, vfsAcl, xa } from "../helpers.ts";

describe("xattr mapping", () => {
  it("converts a POSIX ACL to the on-disk format exactly as mke2fs -d does", () => {
    const tmp = new TempDir();
    try {
      const src = tmp.file("src");
      mkdirSync(src);
      const acl = vfsAcl([[1, 7, 0xffffffff], [2, 5, 1234], [4, 4, 0xffffffff], [8, 6, 4321], [0x10, 7, 0xffffffff], [0x20, 0, 0xffffffff]]);
      writeFileSync(join(src, "f"), "x");
      execFileSync("setfattr", ["-n", "system.posix_acl_access", "-v", `0x${Buffer.from(acl).toString("hex")}`, join(src, "f")]);
      const img = tmp.file("a.img");
      execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^has_journal,^64bit", "-I", "256", "-d", src, img, "16M"]);
      const ino = Number(/Inode: (\d+)/.exec(debugfs(img, "stat /f"))![1]);
      const dev = execFileSync("dd", [`if=${img}`, "bs=1M", "count=16", "status=none"], { maxBuffer: 32 << 20 });
      const bs = 1024 << dev.readUInt32LE(1024 + 0x18);
      const ipg = dev.readUInt32LE(1024 + 0x28);
      const gdt = (bs === 1024 ? 2 : 1) * bs;
      const table = new StructView(GROUP_DESC, new Uint8Array(dev.subarray(gdt, gdt + 32))).get("bg_inode_table_lo");
      const inode = new Uint8Array(dev.subarray(table * bs + (ino - 1) * 256, table * bs + ino * 256));
      let off = 128 + new StructView(INODE, inode).get("i_extra_isize") + 4;
      const base = off;
      let value: Uint8Array | null = null;
      while (new DataView(inode.buffer, inode.byteOffset).getUint32(off, true) !== 0) {
        const e = new StructView(XATTR_ENTRY, inode, off);
        if (e.get("e_name_index") === 2) value = inode.slice(base + e.get("e_value_offs"), base + e.get("e_value_offs") + e.get("e_value_size"));
        off += xattrEntryLen(e.get("e_name_len"));
      }
      expect(value).not.toBeNull();
      expect(Buffer.from(aclToDisk(acl, "f")).toString("hex")).toBe(Buffer.from(value!).toString("hex"));
    } finally {
      tmp.cleanup();
    }
  });

  it("maps prefixes to name indexes and sorts by (index, name length, name)", () => {
    const recs = canonicalXattrs([xa("user.bb", "1"), xa("security.capability", "2"), xa("trusted.z", "3"), xa("user.a", "4"), xa("user.c", "5")], "/f");
    expect(recs.map((r) => `${r.index}:${Buffer.from(r.name).toString()}`)).toEqual(["1:a", "1:c", "1:bb", "4:z", "6:capability"]);
    const acl = canonicalXattrs([xa("system.posix_acl_default", vfsAcl([[1, 7, 0]]))], "/d");
    expect(acl[0]!.index).toBe(3);
    expect(acl[0]!.name.length).toBe(0);
  });

  it("refuses unknown namespaces, empty suffixes, duplicates and malformed ACLs", () => {
    const refuse = (x: Parameters<typeof canonicalXattrs>[0], re: RegExp): void => {
      let err: unknown;
      try {
        canonicalXattrs(x, "/p");
      } catch (e) {
        err = e;
      }
      expect(isPfsError(err, ErrorCode.UNSUPPORTED), String(err)).toBe(true);
      expect(String(err)).toMatch(re);
    };
    refuse([xa("system.foo", "x")], /namespaces/);
    refuse([xa("user.", "x")], /empty suffix/);
    refuse([xa("user.a", "1"), xa("user.a", "2")], /appears twice/);
    refuse([xa("system.posix_acl_access", "junk")], /VFS xattr format/);
    refuse([xa("system.posix_acl_access", vfsAcl([[0x40, 7, 0]]))], /unknown ACL tag/);
    refuse([xa(`user.${"n".repeat(256)}`, "x")], /255 bytes/);
  });

  it("places sets that fit 92 bytes in the inode body, up to a block in a block", () => {
    expect(IBODY_SPACE).toBe(92);
    expect(BLOCK_SPACE).toBe(4064);
    const fit = canonicalXattrs([xa("user.k", "v".repeat(IBODY_SPACE - 4 - xattrEntryLen(1)))], "/f");
    expect(xattrSpace(fit)).toBe(IBODY_SPACE);
    expect(xattrPlacement(fit, "/f")).toBe(XATTR_IBODY);
    expect(xattrPlacement(canonicalXattrs([xa("user.k", "v".repeat(IBODY_SPACE - 4 - xattrEntryLen(1) + 1))], "/f"), "/f")).toBe(XATTR_BLOCK);
    expect(xattrPlacement([], "/f")).toBe(XATTR_NONE);
  });

  it("shares blocks between identical sets only, up to 1024 references each", () => {
    const a = canonicalXattrs([xa("user.x", "1")], "/");
    const b = canonicalXattrs([xa("user.x", "2")], "/");
    expect(xattrKey(a)).not.toBe(xattrKey(b));
    const xb = new XattrBlocks();
    const first = xb.assign(12, a);
    expect(xb.assign(13, b)).not.toBe(first);
    for (let i = 1; i < 1024; i++) expect(xb.assign(100 + i, a)).toBe(first);
    const next = xb.assign(5000, a);
    expect(next).not.toBe(first);
    expect(xb.refcount[first]).toBe(1024);
    expect(xb.owner[next]).toBe(5000);
  });
});
