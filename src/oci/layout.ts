/**
 * An OCI image layout directory (spec §1): `oci-layout`, `index.json` and the
 * blob store. Reading resolves a tag to its manifest; writing stores a
 * manifest blob and applies the tag write rule of §1.3 atomically.
 */
import { mkdir, open, stat } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { log } from "../common/debug.ts";
import { BlobStore } from "./blobs.ts";
import { parseDigest } from "./digest.ts";
import { readRegularFile, writeFileAtomic } from "./file.ts";
import { canonicalJsonBytes, parseJson } from "./json.ts";
import {
  EMPTY_CONFIG_BYTES,
  MediaType,
  emptyIndex,
  hostPlatform,
  parseIndex,
  parseManifest,
  tagOf,
  withTaggedManifest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from "./manifest.ts";

export const IMAGE_LAYOUT_VERSION = "1.0.0";
const OCI_LAYOUT_BYTES = canonicalJsonBytes({ imageLayoutVersion: IMAGE_LAYOUT_VERSION });
/** Manifests are small JSON documents; anything bigger is not one. */
const MAX_MANIFEST = 4 << 20;
/** index.json grows by ~250 bytes per tag; 64 MiB is far beyond any real layout. */
const MAX_INDEX = 64 << 20;

export interface ResolvedManifest {
  tag: string;
  descriptor: Descriptor;
  /** Hex sha256 of the manifest blob. */
  hex: string;
  bytes: Uint8Array;
  manifest: ImageManifest;
}

async function writeAtomic(path: string, dir: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFileAtomic(path, dir, bytes);
  } catch (e) {
    throw PfsError.io(`writing ${path}`, e);
  }
}

export class OciLayout {
  readonly blobs: BlobStore;

  private constructor(readonly dir: string) {
    this.blobs = new BlobStore(dir);
  }

  /** Open an existing layout; refuses a directory without a supported `oci-layout`. */
  static async open(dir: string): Promise<OciLayout> {
    let st;
    try {
      st = await stat(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw PfsError.notFound(`OCI directory ${dir}`, "check the path before the ':'");
      throw PfsError.io(`OCI directory ${dir}`, e);
    }
    if (!st.isDirectory()) throw PfsError.usage(`${dir} is not a directory`, "give the OCI image layout directory before the ':'");
    const layoutPath = join(dir, "oci-layout");
    const raw = await readRegularFile(layoutPath, layoutPath, { maxSize: 1 << 16, missingHint: `${dir} is not an OCI image layout (no oci-layout file)` });
    const v = parseJson(raw, layoutPath) as { imageLayoutVersion?: unknown } | null;
    const version = typeof v === "object" && v !== null ? v.imageLayoutVersion : undefined;
    if (version === "puzzlefs-dev") {
      throw new PfsError(ErrorCode.UNSUPPORTED, `${layoutPath}: imageLayoutVersion "puzzlefs-dev" is the 2023 PuzzleFS format, which is not supported`, {
        hint: "rebuild the image with puzzlefs 0.2 or later",
      });
    }
    if (version !== IMAGE_LAYOUT_VERSION) {
      throw PfsError.format(layoutPath, "unsupported imageLayoutVersion", { expected: IMAGE_LAYOUT_VERSION, got: JSON.stringify(version) });
    }
    return new OciLayout(dir);
  }

  /**
   * Open a layout for writing, creating it if needed (`mkdir -p`,
   * `blobs/sha256` 0755, `oci-layout` only if absent, spec §1.1).
   */
  static async init(dir: string): Promise<OciLayout> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw PfsError.io(`creating OCI directory ${dir}`, e);
    }
    const layout = new OciLayout(dir);
    await layout.blobs.ensureDir();
    try {
      const fh = await open(join(dir, "oci-layout"), "wx", 0o644);
      try {
        await fh.writeFile(OCI_LAYOUT_BYTES);
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw PfsError.io(`writing ${join(dir, "oci-layout")}`, e);
    }
    return OciLayout.open(dir);
  }

  get indexPath(): string {
    return join(this.dir, "index.json");
  }

  /** index.json; NOT_FOUND when missing (or an empty index with `orEmpty`, as the writer wants). */
  async readIndex(orEmpty = false): Promise<ImageIndex> {
    let raw: Uint8Array;
    try {
      raw = await readRegularFile(this.indexPath, this.indexPath, { maxSize: MAX_INDEX, missingHint: "the OCI layout has no index.json; copy the complete image again" });
    } catch (e) {
      if (orEmpty && e instanceof PfsError && e.code === ErrorCode.NOT_FOUND) return emptyIndex();
      throw e;
    }
    return parseIndex(raw, this.indexPath);
  }

  async writeIndex(index: ImageIndex): Promise<void> {
    await writeAtomic(this.indexPath, this.dir, canonicalJsonBytes(index));
  }

  /** Tags in index order (a tag listed twice appears once). */
  async tags(): Promise<string[]> {
    const seen = new Set<string>();
    for (const d of (await this.readIndex()).manifests) {
      const t = tagOf(d);
      if (t !== undefined) seen.add(t);
    }
    return [...seen];
  }

  /** First descriptor carrying the tag (spec §1.3 tag resolution). */
  async resolve(tag: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const d = index.manifests.find((m) => tagOf(m) === tag);
    if (!d) {
      const tags = index.manifests.map(tagOf).filter((t) => t !== undefined);
      throw PfsError.notFound(
        `tag ${JSON.stringify(tag)} in ${this.dir}`,
        tags.length ? `available tags: ${tags.join(", ")}` : "the image index has no tags",
      );
    }
    return d;
  }

  async readManifest(tag: string): Promise<ResolvedManifest> {
    const descriptor = await this.resolve(tag);
    if (descriptor.mediaType !== MediaType.MANIFEST) {
      throw new PfsError(ErrorCode.UNSUPPORTED, `tag ${JSON.stringify(tag)} in ${this.dir}: points at ${descriptor.mediaType}, not an image manifest`);
    }
    const hex = parseDigest(descriptor.digest, `index.json entry for tag ${JSON.stringify(tag)}`);
    const what = `manifest sha256:${hex} (tag ${JSON.stringify(tag)})`;
    const bytes = await this.blobs.get(hex, { what, expectedSize: descriptor.size, maxSize: MAX_MANIFEST });
    return { tag, descriptor, hex, bytes, manifest: parseManifest(bytes, what) };
  }

  /** Write the 2-byte `{}` empty config blob if absent (spec §1.4). */
  async putEmptyConfig(): Promise<void> {
    await this.blobs.put(EMPTY_CONFIG_BYTES);
  }

  /**
   * Store `manifest` as a canonical-JSON blob and point `tag` at it with the
   * tag write rule (spec §1.3). Returns the manifest descriptor as written.
   */
  async putManifest(tag: string, manifest: ImageManifest, platform: Platform = hostPlatform()): Promise<Descriptor & { hex: string }> {
    const bytes = canonicalJsonBytes(manifest);
    const { hex } = await this.blobs.put(bytes);
    const desc: Descriptor = { mediaType: MediaType.MANIFEST, digest: `sha256:${hex}`, size: bytes.length, platform };
    const index = await this.readIndex(true);
    const next = withTaggedManifest(index, tag, desc);
    await this.writeIndex(next);
    log.oci("tag %s -> manifest %s", tag, hex);
    return { ...next.manifests[next.manifests.length - 1]!, hex };
  }
}
