/**
 * Fuzz target: the whole image loader. One input carries a rootfs blob, a
 * manifest JSON template, an index.json template and one chunk blob; they are
 * written as an OCI layout in a scratch directory and opened with
 * `openImage`, then every reachable node is materialized, the first bytes of
 * every file are read, and the ext image is planned and its first blocks
 * rendered (what `puzzlefs serve` does at start-up and on first reads).
 *
 * Templates keep digests valid under mutation: in the manifest,
 * `@ROOTFS_DIGEST@`/`@ROOTFS_SIZE@` and `@CHUNK_DIGEST@`/`@CHUNK_SIZE@` become
 * the sha256 and size of the blobs as written; in the index,
 * `@MANIFEST_DIGEST@`/`@MANIFEST_SIZE@` those of the manifest. A mutated
 * blob therefore still gets past "digest mismatch" and reaches the parsers.
 *
 * Allowed outcomes: success, or a PfsError whose message is one line. Any
 * other exception (TypeError, RangeError, allocation failure, ...) is a
 * finding.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PfsError } from "../../src/common/errors.ts";
import { ExtImage, planExtImage } from "../../src/ext/index.ts";
import { openImage } from "../../src/puzzlefs/reader/image.ts";

export const TAG = "fuzz";
/** Work caps per input, so one execution stays fast whatever the image says. */
const MAX_NODES = 20_000;
const MAX_FILES_READ = 16;
const READ_BYTES = 64 * 1024;
/** The loader's own caps, lowered so a fuzz input cannot make a legitimately huge (slow) image. */
const CACHE_BYTES = 4 << 20;

export interface ImageInput {
  rootfs: Uint8Array;
  manifest: string;
  index: string;
  chunk: Uint8Array;
}

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const size = (b: Uint8Array | string) => (typeof b === "string" ? Buffer.byteLength(b) : b.length);

/** Input layout: u32le |rootfs| rootfs u32le |manifest| manifest u32le |index| index, chunk = the rest. */
export function encodeInput(i: ImageInput): Buffer {
  const parts = [Buffer.from(i.rootfs), Buffer.from(i.manifest), Buffer.from(i.index)];
  const out: Buffer[] = [];
  for (const p of parts) {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(p.length);
    out.push(n, p);
  }
  out.push(Buffer.from(i.chunk));
  return Buffer.concat(out);
}

export function decodeInput(data: Uint8Array): ImageInput {
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  let at = 0;
  const part = (): Buffer => {
    if (at + 4 > b.length) return Buffer.alloc(0);
    const n = Math.min(b.readUInt32LE(at), b.length - at - 4);
    const p = b.subarray(at + 4, at + 4 + n);
    at += 4 + n;
    return p;
  };
  const rootfs = part();
  const manifest = part().toString("latin1");
  const index = part().toString("latin1");
  return { rootfs, manifest, index, chunk: b.subarray(at) };
}

/** Write the layout: returns the directory (fresh per call under `root`). */
export function writeLayout(root: string, i: ImageInput): string {
  const dir = join(root, "oci");
  rmSync(dir, { recursive: true, force: true });
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const put = (b: Uint8Array | string): string => {
    const h = sha(b);
    writeFileSync(join(blobs, h), b);
    return h;
  };
  const rootHex = put(i.rootfs);
  const chunkHex = put(i.chunk);
  put("{}");
  const manifest = i.manifest
    .replaceAll("@ROOTFS_DIGEST@", `sha256:${rootHex}`)
    .replaceAll("@ROOTFS_SIZE@", String(i.rootfs.length))
    .replaceAll("@CHUNK_DIGEST@", `sha256:${chunkHex}`)
    .replaceAll("@CHUNK_SIZE@", String(i.chunk.length));
  const mbytes = Buffer.from(manifest, "latin1");
  const mHex = put(mbytes);
  const index = i.index.replaceAll("@MANIFEST_DIGEST@", `sha256:${mHex}`).replaceAll("@MANIFEST_SIZE@", String(size(mbytes)));
  writeFileSync(join(dir, "index.json"), Buffer.from(index, "latin1"));
  return dir;
}

export interface ImageRun {
  opened: boolean;
  nodes: number;
  filesRead: number;
  planned: boolean;
  error?: PfsError;
}

function expected(e: unknown): PfsError {
  if (!(e instanceof PfsError)) throw e;
  if (e.message.includes("\n")) throw new Error(`PfsError message is not one line: ${JSON.stringify(e.message)}`);
  return e;
}

/** Open, walk, read and plan; returns how far it got, or throws a finding. */
export async function exerciseImage(root: string, input: ImageInput): Promise<ImageRun> {
  const run: ImageRun = { opened: false, nodes: 0, filesRead: 0, planned: false };
  const dir = writeLayout(root, input);
  try {
    const img = await openImage(dir, TAG, { cacheBytes: CACHE_BYTES });
    run.opened = true;
    const tree = img.tree;
    const todo = [tree.rootIno];
    const seen = new Set<number>();
    const files: number[] = [];
    while (todo.length > 0 && run.nodes < MAX_NODES) {
      const ino = todo.pop()!;
      if (seen.has(ino)) continue;
      seen.add(ino);
      const n = tree.node(ino);
      run.nodes++;
      if (n.kind === "file" && files.length < MAX_FILES_READ) files.push(ino);
      for (const e of n.entries ?? []) todo.push(e.ino);
    }
    for (const ino of files) {
      try {
        await tree.readFile(ino, 0, READ_BYTES);
        run.filesRead++;
      } catch (e) {
        expected(e); // a bad or missing chunk fails that read only
      }
    }
    const dev = new ExtImage(planExtImage(tree, { mtime: 0, digest: `sha256:${"0".repeat(64)}`, label: TAG }));
    run.planned = true;
    await dev.readAt(0, Math.min(dev.size, 64 * 4096));
  } catch (e) {
    run.error = expected(e);
  }
  return run;
}

let scratch: string | undefined;

export async function fuzz(data: Buffer): Promise<void> {
  scratch ??= mkdtempSync(join(tmpdir(), "pfs-fuzz-image-"));
  await exerciseImage(scratch, decodeInput(data));
}

process.once("exit", () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
