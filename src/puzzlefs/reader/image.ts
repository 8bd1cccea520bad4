/**
 * Open a PuzzleFS image (spec §5): tag → manifest → rootfs blob, check the
 * manifest version, optionally check fs-verity against a pinned manifest
 * digest (as upstream `mount -d`), validate the merged tree, and hand back a
 * lazy `Tree`. Nothing here reads a chunk blob.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { isSha256Hex, parseDigest } from "../../oci/digest.ts";
import { OciLayout, type ResolvedManifest } from "../../oci/layout.ts";
import { Annotation, MediaType, type Descriptor } from "../../oci/manifest.ts";
import { localImageSource, type ImageSource } from "../../oci/source.ts";
import type { CapnpLimits } from "../format/capnp.ts";
import { decodeVerityData } from "../format/decode.ts";
import { MANIFEST_VERSION } from "../format/types.ts";
import { RootfsView } from "../format/view.ts";
import { fsVerityHex } from "../verity.ts";
import { ChunkCache } from "./chunks.ts";
import { LayerStack } from "./layers.ts";
import { ImageTree } from "./tree.ts";
import { buildTreeIndex } from "./walk.ts";

export interface OpenImageOptions {
  /** Pinned fs-verity digest (hex) of the manifest blob: enables every verity check (spec §5). */
  digest?: string;
  /** Chunk cache byte cap. */
  cacheBytes?: number;
  /** Directory nesting limit. */
  maxDepth?: number;
  /** Cap'n Proto reader limits for the rootfs. */
  limits?: CapnpLimits;
  /** Largest rootfs blob accepted (bytes). Default 2 GiB - 1. */
  maxRootfsBytes?: number;
}

export interface PuzzleImage {
  /** The OCI directory, or `oci://host/repo` for a registry image. */
  dir: string;
  /** The tag, or `@sha256:…` for a registry image pinned by digest. */
  tag: string;
  source: ImageSource;
  /** The local layout (absent for registry images). */
  layout?: OciLayout;
  manifest: ResolvedManifest;
  rootfs: { descriptor: Descriptor; hex: string; size: number };
  layerCount: number;
  tree: ImageTree;
}

export function verityError(what: string, expected: string, got: string, hint?: string): PfsError {
  return new PfsError(ErrorCode.DIGEST, `${what}: fs-verity mismatch: expected ${expected}, got ${got}`, { data: { what, expected, got }, hint });
}

/**
 * Open an image from a local layout (`dir`, `tag`) or from any ImageSource
 * (a registry: oci/remote/source.ts). Only the manifest and the rootfs blob
 * are read here.
 */
export async function openImage(dir: string, tag: string, opts?: OpenImageOptions): Promise<PuzzleImage & { layout: OciLayout }>;
export async function openImage(source: ImageSource, opts?: OpenImageOptions): Promise<PuzzleImage>;
export async function openImage(a: string | ImageSource, b?: string | OpenImageOptions, c?: OpenImageOptions): Promise<PuzzleImage> {
  if (typeof a === "string") {
    const opts = c ?? {};
    checkPin(opts);
    const layout = await OciLayout.open(a);
    return { ...(await openFrom(localImageSource(layout, b as string), opts)), layout };
  }
  const opts = (b as OpenImageOptions | undefined) ?? {};
  checkPin(opts);
  return openFrom(a, opts);
}

function checkPin(opts: OpenImageOptions): void {
  const pinned = opts.digest?.toLowerCase();
  if (pinned !== undefined && !isSha256Hex(pinned)) {
    throw PfsError.usage(`--digest ${JSON.stringify(opts.digest)} is not a hex sha256 fs-verity digest`, "pass the 64 hex digits `puzzlefs build` printed");
  }
}

async function openFrom(source: ImageSource, opts: OpenImageOptions): Promise<PuzzleImage> {
  const pinned = opts.digest?.toLowerCase();
  const { location: dir, reference: tag } = source;
  const manifest = await source.readManifest();
  const mwhat = `manifest sha256:${manifest.hex} (${source.label})`;
  if (pinned !== undefined) {
    const got = fsVerityHex(manifest.bytes);
    if (got !== pinned) throw verityError(mwhat, pinned, got, "the image is not the one the digest was pinned for");
  }

  const rootDesc = manifest.manifest.layers.find((l) => l.mediaType === MediaType.ROOTFS);
  if (!rootDesc) throw PfsError.format(mwhat, `no layer has media type ${MediaType.ROOTFS}; not a PuzzleFS image`);
  const rootHex = parseDigest(rootDesc.digest, `${mwhat} rootfs layer`);
  const rwhat = `rootfs blob sha256:${rootHex}`;
  const bytes = await source.blobs.get(rootHex, { what: rwhat, expectedSize: rootDesc.size, maxSize: opts.maxRootfsBytes ?? 0x7fffffff });
  if (pinned !== undefined) {
    const want = rootDesc.annotations?.[Annotation.VERITY_ROOT_HASH];
    if (want === undefined) throw new PfsError(ErrorCode.DIGEST, `${rwhat}: the manifest has no ${Annotation.VERITY_ROOT_HASH} annotation to check it against`);
    const got = fsVerityHex(bytes);
    if (got !== want.toLowerCase()) throw verityError(rwhat, want, got);
  }

  const view = new RootfsView(bytes, rwhat, opts.limits);
  if (view.manifestVersion !== MANIFEST_VERSION) {
    throw PfsError.format(rwhat, "invalid image version (manifestVersion)", { expected: MANIFEST_VERSION, got: view.manifestVersion });
  }
  const blobSizes = new Map<string, number>();
  for (const [i, l] of manifest.manifest.layers.entries()) {
    if (l.mediaType === MediaType.FILEDATA || l.mediaType === MediaType.FILEDATA_ZSTD) blobSizes.set(parseDigest(l.digest, `${mwhat} layers[${i}]`), l.size);
  }
  let verity: Map<string, string> | null = null;
  if (pinned !== undefined) {
    verity = new Map();
    for (const [i, v] of decodeVerityData(view).entries()) {
      if (v.digest.length !== 32 || v.verity.length !== 32) throw PfsError.format(`${rwhat} fsVerityData[${i}]`, "digest and verity must be 32 bytes each");
      verity.set(Buffer.from(v.digest).toString("hex"), Buffer.from(v.verity).toString("hex"));
    }
  }

  const stack = new LayerStack(view);
  view.msg.resetBudget();
  const index = buildTreeIndex(stack, { maxDepth: opts.maxDepth, blobSizes });
  const chunks = new ChunkCache(source.blobs, { maxBytes: opts.cacheBytes, blobSizes, verity });
  log.pfs("opened %s:%s: %d layers, %d nodes, %d bytes of metadata", dir, tag, stack.layerCount, index.nodeCount, bytes.length);
  return {
    dir,
    tag,
    source,
    manifest,
    rootfs: { descriptor: rootDesc, hex: rootHex, size: bytes.length },
    layerCount: stack.layerCount,
    tree: new ImageTree(stack, index, chunks),
  };
}
