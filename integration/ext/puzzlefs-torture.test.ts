/**
 * The torture acceptance through the real reader: a PuzzleFS image
 * with every object kind, a 100 000-entry directory and a 5 GiB hole-free
 * file made of one 1 MiB chunk blob referenced 5120 times (cheap to store
 * thanks to dedup) → ext image → e2fsck clean → kernel mount equals the
 * reader's tree, the 5 GiB file byte for byte.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Inode } from "../../src/puzzlefs/format/types.ts";
import { openImage } from "../../src/puzzlefs/reader/image.ts";
import { ExtImage, exportImage, planExtImage } from "../../src/ext/index.ts";
import { scatterEncode } from "../../test/helpers/capnp-writer.ts";
import { I, rootfs, writeImage } from "../../test/helpers/test-image.ts";
import { TempDir, compareMounted, e2fsck, prng, withMount } from "../../test/ext/helpers.ts";

const enc = new TextEncoder();
const MiB = 1 << 20;
const xattrs = (pairs: Array<[string, string | Uint8Array]>) => pairs.map(([k, v]) => ({ key: enc.encode(k), val: typeof v === "string" ? enc.encode(v) : v }));

describe("PuzzleFS torture image → ext", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it("passes e2fsck and mounts equal to the reader's tree", async () => {
    const chunk = prng(7, MiB);
    const hex = createHash("sha256").update(chunk).digest("hex");
    const HUGE = 5 * 1024 * MiB + 777;
    const hugeChunks = Array.from({ length: Math.ceil(HUGE / MiB) }, (_, i) => ({ hex, len: Math.min(MiB, HUGE - i * MiB) }));
    const inodes: Inode[] = [];
    const root: Array<[string | Uint8Array, number]> = [];
    let ino = 10;
    const add = (name: string | Uint8Array, make: (ino: number) => Inode, into = root): number => {
      const i = ino++;
      inodes.push(make(i));
      into.push([name, i]);
      return i;
    };
    add("huge", (i) => I.file(i, hugeChunks));
    for (const size of [0, 1, 4095, 4096, 4097, 300_000]) add(`f${size}`, (i) => I.file(i, size ? [{ hex, offset: 1000, len: size }] : []));
    const shared = add("hardlinked", (i) => I.file(i, [{ hex, len: 9 }], { uid: 70000, gid: 80000, permissions: 0o640 }));
    add("setuid", (i) => I.file(i, [{ hex, len: 3 }], { permissions: 0o4755 }));
    add("caps", (i) => I.file(i, [{ hex, len: 3 }], { additional: { xattrs: xattrs([["security.capability", Uint8Array.of(1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)], ["user.note", "hi"], ["trusted.t", "x".repeat(400)]]), symlinkTarget: null } }));
    add("fifo", (i) => I.plain(i, "fifo"));
    add("sock", (i) => I.plain(i, "sock"));
    add("null", (i) => I.dev(i, "chr", 1, 3));
    add("nvme", (i) => I.dev(i, "blk", 259, 1 << 18));
    add("short", (i) => I.lnk(i, "f1"));
    add("long", (i) => I.lnk(i, "p/".repeat(2000)));
    add(Uint8Array.of(0xc3, 0x28, 0xff), (i) => I.file(i, [{ hex, len: 5 }]));
    add("n".repeat(255), (i) => I.file(i, [{ hex, len: 5 }]));
    const sub: Array<[string, number]> = [["again", shared]];
    add("sub", (i) => I.dir(i, sub, { permissions: 0o1777, additional: { xattrs: xattrs([["user.d", "dir"]]), symlinkTarget: null } }));
    const big: Array<[string, number]> = [];
    for (let k = 0; k < 100_000; k++) add(`entry-${k}-of-the-big-directory`, (i) => I.file(i, [{ hex, offset: k, len: 1 + (k % 100) }]), big);
    big.push(["link-to-shared", shared]);
    add("big", (i) => I.dir(i, big));
    inodes.push(I.dir(1, root));
    const dir = tmp.file("oci");
    // One big segment: the default test encoding scatters 100k inodes over more segments than readers accept.
    await writeImage(dir, "torture", scatterEncode(rootfs([inodes]), { seed: 1, far: 0, segmentWords: 1 << 26 }), [{ data: chunk }]);

    const img = await openImage(dir, "torture");
    expect(img.tree.nodeCount).toBe(inodes.length);
    const dev = new ExtImage(planExtImage(img.tree, { mtime: 1_700_000_000, digest: `sha256:${img.manifest.hex}`, label: "torture" }));
    const out = tmp.file("torture.img");
    await exportImage(dev, out);
    const r = e2fsck(out);
    expect(r.code, r.out).toBe(0);
    const want = createHash("sha256");
    for (let off = 0; off < HUGE; off += 64 * MiB) want.update(await img.tree.readFile(10, off, Math.min(64 * MiB, HUGE - off)));
    await withMount(out, async (d) => {
      expect(await compareMounted(img.tree, d)).toEqual([]);
      const got = createHash("sha256");
      for await (const c of createReadStream(join(d, "huge"), { highWaterMark: 8 * MiB })) got.update(c as Buffer);
      expect(got.digest("hex")).toBe(want.digest("hex"));
    });
  });
});
