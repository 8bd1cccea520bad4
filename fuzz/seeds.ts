/**
 * Seed inputs for the fuzz targets, written to fuzz/seeds/<target>/ (committed):
 *   node --import tsx fuzz/seeds.ts
 * Deterministic: the same files on every run.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { EMPTY_CONFIG_HEX, MediaType } from "../src/oci/manifest.ts";
import { compressSeekable } from "../src/puzzlefs/compression/seekable-encode.ts";
import { encodeRootfs } from "../src/puzzlefs/format/encode.ts";
import { filler } from "../test/fixtures/bad/image.ts";
import { I, rootfs } from "../test/helpers/test-image.ts";
import { encodeInput, type ImageInput } from "./targets/image.ts";
import { seeds as sessionSeeds } from "./targets/session.ts";

export const SEEDS_DIR = join(import.meta.dirname, "seeds");

/** The manifest template: rootfs and one chunk blob, digests and sizes filled in by the target. */
export function manifestTemplate(chunkType: string = MediaType.FILEDATA): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.MANIFEST,
    config: { mediaType: MediaType.EMPTY, digest: `sha256:${EMPTY_CONFIG_HEX}`, size: 2 },
    layers: [
      { mediaType: MediaType.ROOTFS, digest: "@ROOTFS_DIGEST@", size: "@ROOTFS_SIZE@" },
      { mediaType: chunkType, digest: "@CHUNK_DIGEST@", size: "@CHUNK_SIZE@" },
    ],
  }).replace(/"(@[A-Z_]+_SIZE@)"/g, "$1");
}

export function indexTemplate(tag = "fuzz"): string {
  return JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MediaType.MANIFEST, digest: "@MANIFEST_DIGEST@", size: "@MANIFEST_SIZE@", annotations: { "org.opencontainers.image.ref.name": tag } }],
  }).replace(/"(@[A-Z_]+_SIZE@)"/g, "$1");
}

function imageSeeds(): Array<[string, Buffer]> {
  const data = filler(3000, 7);
  const hex = createHash("sha256").update(data).digest("hex");
  const z = compressSeekable(data);
  const zhex = createHash("sha256").update(z).digest("hex");
  const tree = (h: string, compressed: boolean) =>
    rootfs([
      [
        I.dir(1, [["a", 2], ["d", 3], ["l", 5], ["p", 6], ["c", 7], ["h", 2]]),
        I.file(2, [{ hex: h, offset: 0, len: 1000, compressed }], { additional: { xattrs: [{ key: Buffer.from("user.k"), val: Buffer.from("v") }], symlinkTarget: null } }),
        I.dir(3, [["b", 4]]),
        I.file(4, [{ hex: h, offset: 1000, len: 2000, compressed }, { hex: h, offset: 0, len: 10, compressed }]),
        I.lnk(5, "a"),
        I.plain(6, "fifo"),
        I.dev(7, "chr", 1, 3),
      ],
    ]);
  const layered = rootfs([
    [I.dir(1, [["a", 2], ["n", 8]]), I.wht(3), I.file(8, [{ hex, offset: 5, len: 50 }])],
    [I.dir(1, [["a", 2], ["d", 3]]), I.file(2, [{ hex, len: 3000 }]), I.dir(3, [])],
  ]);
  const seed = (r: Uint8Array, chunk: Uint8Array, type?: string): Buffer => {
    const input: ImageInput = { rootfs: r, manifest: manifestTemplate(type), index: indexTemplate(), chunk };
    return encodeInput(input);
  };
  return [
    ["small", seed(encodeRootfs(tree(hex, false)), data)],
    ["small-zstd", seed(encodeRootfs(tree(zhex, true)), z, MediaType.FILEDATA_ZSTD)],
    ["two-layers", seed(encodeRootfs(layered), data)],
  ];
}

export function allSeeds(): Record<string, Array<[string, Buffer]>> {
  return { session: sessionSeeds(), image: imageSeeds() };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [target, list] of Object.entries(allSeeds())) {
    const dir = join(SEEDS_DIR, target);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of list) writeFileSync(join(dir, name), bytes);
    process.stdout.write(`${dir}: ${list.length} seeds\n`);
  }
}
