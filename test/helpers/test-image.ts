/**
 * TEST-ONLY: assemble small PuzzleFS images from hand-written inode lists,
 * including hostile ones the real builder would never produce. The rootfs is
 * encoded with the test scatter writer (capnp-writer.ts), not the builder.
 */
import { OciLayout } from "../../src/oci/layout.ts";
import { Annotation, EMPTY_CONFIG_DESCRIPTOR, MediaType, type Descriptor } from "../../src/oci/manifest.ts";
import type { Inode, Rootfs } from "../../src/puzzlefs/format/types.ts";
import { fsVerityDigest, fsVerityHex } from "../../src/puzzlefs/verity.ts";
import { scatterEncode } from "./capnp-writer.ts";
import { sha256hex } from "./oci-fixtures.ts";

const enc = new TextEncoder();
const bytes = (s: string | Uint8Array) => (typeof s === "string" ? enc.encode(s) : s);
const base = { uid: 0, gid: 0, additional: null };

export interface ChunkSpec {
  hex: string;
  offset?: number;
  len: number;
  compressed?: boolean;
}

export const I = {
  dir: (ino: number, entries: Array<[string | Uint8Array, number]>, x: Partial<Inode> & { lookBelow?: boolean } = {}): Inode => ({
    ...base,
    permissions: 0o755,
    ino: BigInt(ino),
    mode: { kind: "dir", entries: entries.map(([n, i]) => ({ name: bytes(n), ino: BigInt(i) })), lookBelow: x.lookBelow ?? false },
    ...x,
  }),
  file: (ino: number, chunks: ChunkSpec[], x: Partial<Inode> = {}): Inode => ({
    ...base,
    permissions: 0o644,
    ino: BigInt(ino),
    mode: {
      kind: "file",
      chunks: chunks.map((c) => ({ blob: { digest: Buffer.from(c.hex, "hex"), offset: BigInt(c.offset ?? 0), compressed: c.compressed ?? false }, len: BigInt(c.len) })),
    },
    ...x,
  }),
  lnk: (ino: number, target: string, x: Partial<Inode> = {}): Inode => ({
    ...base,
    permissions: 0o777,
    ino: BigInt(ino),
    mode: { kind: "lnk" },
    additional: { xattrs: [], symlinkTarget: bytes(target) },
    ...x,
  }),
  dev: (ino: number, kind: "chr" | "blk", major: number, minor: number, x: Partial<Inode> = {}): Inode => ({
    ...base,
    permissions: 0o600,
    ino: BigInt(ino),
    mode: { kind, major: BigInt(major), minor: BigInt(minor) },
    ...x,
  }),
  plain: (ino: number, kind: "fifo" | "sock" | "unknown", x: Partial<Inode> = {}): Inode => ({ ...base, permissions: 0o644, ino: BigInt(ino), mode: { kind }, ...x }),
  wht: (ino: number): Inode => ({ ...base, permissions: 0o644, ino: BigInt(ino), mode: { kind: "wht" } }),
};

/** Layers top first; each layer's inodes are sorted by ino here unless `keepOrder`. */
export function rootfs(layers: Inode[][], opts: { keepOrder?: boolean; version?: bigint; verity?: Map<string, Uint8Array> } = {}): Rootfs {
  return {
    metadatas: layers.map((inodes) => ({ inodes: opts.keepOrder ? inodes : [...inodes].sort((a, b) => (a.ino < b.ino ? -1 : a.ino > b.ino ? 1 : 0)) })),
    fsVerityData: [...(opts.verity ?? new Map())].sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, v]) => ({ digest: Buffer.from(h, "hex"), verity: v })),
    manifestVersion: opts.version ?? 3n,
  };
}

export interface WrittenImage {
  dir: string;
  tag: string;
  manifestHex: string;
  /** fs-verity of the manifest blob: what `--digest` pins. */
  manifestVerity: string;
  rootfsHex: string;
}

/**
 * Store chunk blobs and a rootfs (value or raw bytes) as an image under `tag`.
 * `fsVerityData` is filled from the chunk blobs unless the rootfs value already has entries.
 */
export async function writeImage(
  dir: string,
  tag: string,
  root: Rootfs | Uint8Array,
  chunks: Array<{ data: Uint8Array; mediaType?: string; listed?: boolean }> = [],
  opts: { seed?: number; far?: number } = {},
): Promise<WrittenImage> {
  const layout = await OciLayout.init(dir);
  await layout.putEmptyConfig();
  const layers: Descriptor[] = [];
  const verity = new Map<string, Uint8Array>();
  for (const c of chunks) {
    const { hex, size } = await layout.blobs.put(c.data);
    verity.set(hex, fsVerityDigest(c.data));
    if (c.listed !== false) layers.push({ mediaType: c.mediaType ?? MediaType.FILEDATA, digest: `sha256:${hex}`, size });
  }
  let rbytes: Uint8Array;
  if (root instanceof Uint8Array) rbytes = root;
  else {
    const r = root.fsVerityData.length ? root : { ...root, fsVerityData: rootfs([], { verity }).fsVerityData };
    rbytes = scatterEncode(r, { seed: opts.seed ?? 1, far: opts.far ?? 0.2, segmentWords: 256 });
  }
  const r = await layout.blobs.put(rbytes);
  layers.unshift({ mediaType: MediaType.ROOTFS, digest: `sha256:${r.hex}`, size: r.size, annotations: { [Annotation.VERITY_ROOT_HASH]: fsVerityHex(rbytes) } });
  const d = await layout.putManifest(tag, { schemaVersion: 2, config: EMPTY_CONFIG_DESCRIPTOR, layers }, { architecture: "amd64", os: "linux" });
  const mbytes = await layout.blobs.get(d.hex);
  return { dir, tag, manifestHex: d.hex, manifestVerity: fsVerityHex(mbytes), rootfsHex: r.hex };
}

export { sha256hex };
