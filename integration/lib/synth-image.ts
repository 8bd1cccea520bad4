/**
 * A PuzzleFS image of synthetic files, made with the project's own format
 * pieces (FastCDC chunking, the rootfs encoder, seekable zstd, the OCI blob
 * store): what the load/fault suite and `npm run bench -- serve` serve.
 * Each file is chunked on its own, so every chunk blob belongs to exactly one
 * file (a fault test damages one blob and knows which file it hits).
 * Deterministic for a given seed. File bytes are text-like (16 letters, about
 * 2:1 under zstd) so the compressed image is a real one.
 */
import { createHash } from "node:crypto";
import { MediaType, EMPTY_CONFIG_DESCRIPTOR } from "../../src/oci/manifest.ts";
import { OciLayout } from "../../src/oci/layout.ts";
import { chunkAll } from "../../src/puzzlefs/builder/fastcdc.ts";
import { compressSeekable } from "../../src/puzzlefs/compression/seekable-encode.ts";
import { encodeRootfs } from "../../src/puzzlefs/format/encode.ts";
import type { Inode } from "../../src/puzzlefs/format/types.ts";

export interface SynthOptions {
  /** Total bytes of file data (default 64 MiB). */
  bytes?: number;
  /** Number of files (default 64), spread over 8 directories. */
  files?: number;
  /** Store chunks as seekable zstd (`puzzlefs build -c`). */
  compressed?: boolean;
  seed?: number;
}

export interface SynthFile {
  path: string;
  ino: number;
  size: number;
  /** Hex digests of the chunk blobs holding this file, in order. */
  blobs: string[];
}

export interface SynthImage {
  dir: string;
  tag: string;
  files: SynthFile[];
  /** Stored bytes of all chunk blobs. */
  storedBytes: number;
}

/** Deterministic text-like bytes: 16 letters, xorshift32. */
export function synthBytes(n: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const b = Buffer.from(words.buffer, 0, n);
  for (let i = 0; i < n; i++) b[i] = 0x61 + (b[i]! & 15);
  return b;
}

/** Write the image as `tag` into the OCI layout `dir` (created if needed). */
export async function makeSynthImage(dir: string, tag: string, o: SynthOptions = {}): Promise<SynthImage> {
  const total = o.bytes ?? 64 << 20;
  const nfiles = o.files ?? 64;
  const seed = o.seed ?? 1;
  const layout = await OciLayout.init(dir);
  await layout.putEmptyConfig();
  const inodes: Inode[] = [];
  const layers = new Map<string, { mediaType: string; digest: string; size: number }>();
  const files: SynthFile[] = [];
  const dirs = 8;
  const dirEntries: Array<Array<{ name: Uint8Array; ino: bigint }>> = Array.from({ length: dirs }, () => []);
  let ino = 2 + dirs;
  let storedBytes = 0;
  // Sizes vary 1:7 around the mean, so there are small and large files.
  const weights = Array.from({ length: nfiles }, (_, i) => 1 + ((i * 7919 + seed) % 7));
  const wsum = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < nfiles; i++) {
    const size = Math.max(1, Math.floor((total * weights[i]!) / wsum));
    const data = synthBytes(size, seed * 1_000_003 + i);
    const chunks = chunkAll(data);
    const fileChunks = [];
    const blobs: string[] = [];
    for (const c of chunks) {
      const stored = o.compressed ? compressSeekable(c.data) : c.data;
      const { hex } = await layout.blobs.put(stored);
      if (!layers.has(hex)) {
        layers.set(hex, { mediaType: o.compressed ? MediaType.FILEDATA_ZSTD : MediaType.FILEDATA, digest: `sha256:${hex}`, size: stored.length });
        storedBytes += stored.length;
      }
      blobs.push(hex);
      fileChunks.push({ blob: { digest: Buffer.from(hex, "hex"), offset: 0n, compressed: !!o.compressed }, len: BigInt(c.length) });
    }
    const d = i % dirs;
    const name = `file-${String(i).padStart(4, "0")}.dat`;
    dirEntries[d]!.push({ name: Buffer.from(name), ino: BigInt(ino) });
    inodes.push({ ino: BigInt(ino), mode: { kind: "file", chunks: fileChunks }, uid: 0, gid: 0, permissions: 0o644, additional: null });
    files.push({ path: `/d${d}/${name}`, ino, size, blobs });
    ino++;
  }
  inodes.push({
    ino: 1n,
    mode: { kind: "dir", entries: Array.from({ length: dirs }, (_, d) => ({ name: Buffer.from(`d${d}`), ino: BigInt(2 + d) })), lookBelow: false },
    uid: 0,
    gid: 0,
    permissions: 0o755,
    additional: null,
  });
  for (let d = 0; d < dirs; d++) {
    inodes.push({ ino: BigInt(2 + d), mode: { kind: "dir", entries: dirEntries[d]!, lookBelow: false }, uid: 0, gid: 0, permissions: 0o755, additional: null });
  }
  inodes.sort((a, b) => (a.ino < b.ino ? -1 : 1));
  const rootfs = encodeRootfs({ metadatas: [{ inodes }], fsVerityData: [], manifestVersion: 3n });
  const r = await layout.blobs.put(rootfs);
  await layout.putManifest(tag, {
    schemaVersion: 2,
    mediaType: MediaType.MANIFEST,
    config: EMPTY_CONFIG_DESCRIPTOR,
    layers: [{ mediaType: MediaType.ROOTFS, digest: `sha256:${r.hex}`, size: r.size }, ...layers.values()],
  });
  return { dir, tag, files, storedBytes };
}

export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** The same synthetic files as a directory tree (for `puzzlefs build`): d0..d7/file-NNNN.dat. */
export async function writeSynthTree(root: string, o: Omit<SynthOptions, "compressed"> = {}): Promise<number> {
  const { mkdir, writeFile } = await import("node:fs/promises");
  const total = o.bytes ?? 64 << 20;
  const nfiles = o.files ?? 64;
  const seed = o.seed ?? 1;
  const weights = Array.from({ length: nfiles }, (_, i) => 1 + ((i * 7919 + seed) % 7));
  const wsum = weights.reduce((a, b) => a + b, 0);
  let bytes = 0;
  for (let i = 0; i < nfiles; i++) {
    const size = Math.max(1, Math.floor((total * weights[i]!) / wsum));
    const dir = `${root}/d${i % 8}`;
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}/file-${String(i).padStart(4, "0")}.dat`, synthBytes(size, seed * 1_000_003 + i));
    bytes += size;
  }
  return bytes;
}
