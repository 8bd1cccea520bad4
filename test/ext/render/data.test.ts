import { readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryTree, type MemoryNodeInit } from "../../../src/puzzlefs/tree.ts";
import { ExtImage, exportImage, planExtImage } from "../../../src/ext/index.ts";
import { verifyXattrBlockCsum } from "../../../src/ext/csum.ts";
import { StructView } from "../../../src/ext/struct/field.ts";
import { XATTR_HEADER } from "../../../src/ext/struct/xattr.ts";
import { TempDir, debugfs, e2fsck, withMount, xa } from "../helpers.ts";

describe("xattr and symlink blocks", () => {
  const tmp = new TempDir();
  const img = tmp.file("x.img");
  const N = 1100;
  const shared = [xa("user.shared", "s".repeat(200)), xa("trusted.level", "2")];
  let dev: ExtImage;

  beforeAll(async () => {
    const nodes: Record<number, MemoryNodeInit> = {};
    const entries = [];
    for (let i = 0; i < N; i++) {
      nodes[10 + i] = { kind: "file", data: `${i}`, xattrs: shared };
      entries.push({ name: `f${i}`, ino: 10 + i });
    }
    nodes[2] = { kind: "file", xattrs: [xa("user.own", "o".repeat(150))] };
    nodes[3] = { kind: "lnk", symlinkTarget: "/target/".repeat(100) };
    entries.push({ name: "own", ino: 2 }, { name: "slow", ino: 3 });
    nodes[1] = { kind: "dir", entries };
    dev = new ExtImage(planExtImage(new MemoryTree(nodes), { mtime: 0 }));
    await exportImage(dev, img);
  });
  afterAll(() => tmp.cleanup());

  it("passes e2fsck, whose pass 1 counts every reference to each xattr block", () => {
    const r = e2fsck(img);
    expect(r.code, r.out).toBe(0);
  });

  it("shares one block among identical sets, up to 1024 references, then starts another", async () => {
    const acl = (p: string): number => Number(/File ACL: (\d+)/.exec(debugfs(img, `stat ${p}`))![1]);
    const first = acl("/f0");
    expect(acl("/f1023")).toBe(first);
    const second = acl("/f1024");
    expect(second).not.toBe(first);
    expect(acl("/f1099")).toBe(second);
    expect(acl("/own")).not.toBe(first);
    const refcount = async (b: number): Promise<number> => {
      const blk = await dev.readAt(b * 4096, 4096);
      expect(verifyXattrBlockCsum(dev.plan.opts.csumSeed, b, blk)).toBe(true);
      return new StructView(XATTR_HEADER, blk).get("h_refcount");
    };
    expect(await refcount(first)).toBe(1024);
    expect(await refcount(second)).toBe(N - 1024);
    expect(await refcount(acl("/own"))).toBe(1);
  });

  it("the kernel reads the shared attributes and the long symlink", async () => {
    await withMount(img, async (d) => {
      const { getAttributeSync } = await import("@napi-rs/xattr");
      expect(getAttributeSync(join(d, "f1050"), "user.shared")!.toString()).toBe("s".repeat(200));
      expect(getAttributeSync(join(d, "f3"), "trusted.level")!.toString()).toBe("2");
      expect(readlinkSync(join(d, "slow"))).toBe("/target/".repeat(100));
    });
  });
});
