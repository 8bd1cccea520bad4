/**
 * Acceptance on the OCI fixtures through the real reader: every fixture
 * image becomes an ext image that e2fsck accepts and the kernel mounts as
 * the reader's tree; and no chunk blob is opened until a file block is read.
 */
import { afterAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/puzzlefs/reader/image.ts";
import { ExtImage, exportImage, planExtImage } from "../../src/ext/index.ts";
import { RK, classOf } from "../../src/ext/layout/regions.ts";
import { fixtureDir } from "../helpers/oci-fixtures.ts";
import { TempDir, compareMounted, e2fsck, withMount } from "./helpers.ts";

const IMAGES: Array<[string, string]> = [
  ["sekien-noop", "test"],
  ["sekien-zstd", "test"],
  ["sekien-delta-noop", "test"],
  ["sekien-delta-noop", "test2"],
  ["mixed-noop", "mixed"],
];

describe("ext images of the OCI fixtures", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it.each(IMAGES)("%s:%s passes e2fsck and mounts equal to the reader's tree", async (name, tag) => {
    const img = await openImage(fixtureDir(name), tag);
    const dev = new ExtImage(planExtImage(img.tree, { mtime: 0, digest: `sha256:${img.manifest.hex}`, label: tag }));
    const out = tmp.file(`${name}-${tag}.img`);
    await exportImage(dev, out);
    const r = e2fsck(out);
    expect(r.code, r.out).toBe(0);
    expect(await withMount(out, (d) => compareMounted(img.tree, d))).toEqual([]);
  });

  it("opens no chunk blob while planning and rendering every metadata block; the first file block read opens one", async () => {
    const img = await openImage(fixtureDir("mixed-noop"), "mixed");
    const opened: string[] = [];
    img.layout.blobs.onOpen = (hex) => opened.push(hex);
    const opensAtStart = img.layout.blobs.stats.opens;
    const dev = new ExtImage(planExtImage(img.tree, { mtime: 0 }));
    const rt = dev.plan.regions;
    for (let i = 0; i < rt.count; i++) {
      if (classOf(rt.kind[i]!) !== "meta") continue;
      await dev.readAt(rt.start[i]! * 4096, rt.len[i]! * 4096);
    }
    expect(opened).toEqual([]);
    expect(img.layout.blobs.stats.opens).toBe(opensAtStart);
    expect(img.tree.readFileCalls).toBe(0);
    const file = [...rt.kind].indexOf(RK.FILE);
    await dev.readAt(rt.start[file]! * 4096, 4096);
    expect(opened.length).toBeGreaterThan(0);
    expect(img.tree.readFileCalls).toBe(1);
  });
});
