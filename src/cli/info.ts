/**
 * `puzzlefs info OCI_DIR[:TAG]`: the tags of a layout and, per image, its
 * manifest digest (and the fs-verity digest to pin with --digest), layers,
 * inode count, logical bytes (Σ file sizes) and stored bytes (Σ distinct
 * blobs the manifest references, plus the manifest itself).
 */
import type { Command } from "commander";
import { PfsError } from "../common/errors.ts";
import { OciLayout } from "../oci/layout.ts";
import { MediaType, tagOf } from "../oci/manifest.ts";
import { parseImageRefOptionalTag } from "../oci/ref.ts";
import { RegistryClient } from "../oci/remote/client.ts";
import { formatRemoteRef, isRemoteRef, parseRemoteRef } from "../oci/remote/ref.ts";
import { openImage, type PuzzleImage } from "../puzzlefs/reader/image.ts";
import { fsVerityHex } from "../puzzlefs/verity.ts";
import { addImageOptions, withImage, writeOut, type ImageOptions } from "./image-arg.ts";
import { registryClientOptions } from "./remote-args.ts";
import { describe as describeExt, type ExtDescription } from "../ext/index.ts";
import { planFor, renderExt } from "./export.ts";

export interface ImageInfo {
  tag: string;
  manifest: { digest: string; size: number; fsVerity: string };
  rootfs: { digest: string; size: number; metadataLayers: number };
  chunkBlobs: { listed: number; distinct: number; mediaTypes: string[] };
  inodes: number;
  logicalBytes: number;
  storedBytes: number;
  /** With --ext: the planned ext image (geometry, blocks by kind). */
  ext?: ExtDescription;
}

export async function imageInfo(dir: string, tag: string, opts: ImageOptions & { ext?: boolean } = {}): Promise<ImageInfo> {
  return describeImage(await openImage(dir, tag, { digest: opts.digest }), tag, opts);
}

export function describeImage(img: PuzzleImage, tag: string, opts: { ext?: boolean } = {}): ImageInfo {
  const m = img.manifest;
  const blobs = new Map<string, number>([[m.manifest.config.digest, m.manifest.config.size]]);
  const chunkTypes = new Set<string>();
  let listed = 0;
  for (const l of m.manifest.layers) {
    blobs.set(l.digest, l.size);
    if (l.mediaType !== MediaType.ROOTFS) {
      listed++;
      chunkTypes.add(l.mediaType);
    }
  }
  let stored = m.bytes.length;
  for (const s of blobs.values()) stored += s;
  const info: ImageInfo = {
    tag,
    manifest: { digest: `sha256:${m.hex}`, size: m.bytes.length, fsVerity: fsVerityHex(m.bytes) },
    rootfs: { digest: `sha256:${img.rootfs.hex}`, size: img.rootfs.size, metadataLayers: img.layerCount },
    chunkBlobs: { listed, distinct: blobs.size - 2, mediaTypes: [...chunkTypes] },
    inodes: img.tree.nodeCount,
    logicalBytes: img.tree.logicalBytes,
    storedBytes: stored,
  };
  if (opts.ext) info.ext = describeExt(planFor(img, 0).plan);
  return info;
}

function render(i: ImageInfo): string {
  const chunks = `${i.chunkBlobs.listed} listed, ${i.chunkBlobs.distinct} distinct${i.chunkBlobs.mediaTypes.length ? ` (${i.chunkBlobs.mediaTypes.join(", ")})` : ""}`;
  return [
    `tag:             ${i.tag}`,
    `manifest:        ${i.manifest.digest} (${i.manifest.size} bytes)`,
    `fs-verity:       ${i.manifest.fsVerity} (pin with --digest)`,
    `rootfs:          ${i.rootfs.digest} (${i.rootfs.size} bytes, ${i.rootfs.metadataLayers} metadata layer${i.rootfs.metadataLayers === 1 ? "" : "s"})`,
    `chunk blobs:     ${chunks}`,
    `inodes:          ${i.inodes}`,
    `logical bytes:   ${i.logicalBytes}`,
    `stored bytes:    ${i.storedBytes}`,
    ...(i.ext ? [renderExt(i.ext)] : []),
  ].join("\n");
}

/** `info oci://HOST/REPO[:TAG|@sha256:…]`: the repository's tags, then the image (or every tagged image). */
async function remoteInfo(ref: string, opts: ImageOptions & { json?: boolean; ext?: boolean }): Promise<void> {
  const r = parseRemoteRef(ref, { tagOptional: true });
  const repo = formatRemoteRef({ ...r, tag: undefined, digest: undefined });
  const client = new RegistryClient(r, await registryClientOptions(r, opts));
  let allTags: string[];
  try {
    allTags = await client.listTags();
  } finally {
    client.close();
  }
  const one = r.tag !== undefined || r.digest !== undefined;
  if (!one && opts.digest !== undefined) throw PfsError.usage("--digest pins one image: give oci://HOST/REPO:TAG", "e.g. puzzlefs info oci://127.0.0.1:5000/repo:latest --digest HEX");
  const refs = one ? [ref] : allTags.map((t) => `${repo}:${t}`);
  const infos: ImageInfo[] = [];
  for (const x of refs) {
    await withImage(x, opts, async (img) => {
      infos.push(describeImage(img, img.tag, opts));
    });
  }
  if (opts.json) {
    await writeOut(`${JSON.stringify({ repository: repo, tags: allTags, images: infos }, null, 2)}\n`);
    return;
  }
  const out: string[] = [`repository:      ${repo}`, `tags:            ${allTags.length ? allTags.join(", ") : "(none)"}`];
  for (const i of infos) out.push("", render(i));
  await writeOut(`${out.join("\n")}\n`);
}

export function registerInfo(program: Command): void {
  addImageOptions(
    program
      .command("info")
      .description("Show the tags of an OCI layout or registry repository and, for each image (or just TAG), its manifest, layers, inode count, logical and stored bytes.")
      .argument("<OCI_DIR[:TAG]>", "an OCI image layout directory, optionally with one tag; or oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]")
      .option("--json", "print JSON instead of text")
      .option("--ext", "also plan the ext4 image `puzzlefs export`/`serve` would present, and show its geometry"),
  ).action(async (ref: string, opts: ImageOptions & { json?: boolean; ext?: boolean }) => {
    if (isRemoteRef(ref)) return remoteInfo(ref, opts);
    const { dir, tag } = parseImageRefOptionalTag(ref);
    const layout = await OciLayout.open(dir);
    const allTags = await layout.tags();
    const tags = tag === undefined ? allTags : [tag];
    if (tag === undefined && opts.digest !== undefined) {
      throw PfsError.usage("--digest pins one image: give OCI_DIR:TAG", "e.g. puzzlefs info ./oci:latest --digest HEX");
    }
    if (tag !== undefined) await layout.resolve(tag); // a clear "tag not found" before any other work
    const infos: ImageInfo[] = [];
    for (const t of tags) infos.push(await imageInfo(dir, t, opts));
    if (opts.json) {
      const index = await layout.readIndex();
      const all = index.manifests.map((d) => ({ tag: tagOf(d) ?? null, digest: d.digest, size: d.size }));
      await writeOut(`${JSON.stringify({ dir, tags: all, images: infos }, null, 2)}\n`);
      return;
    }
    const out: string[] = [`OCI layout:      ${dir}`, `tags:            ${allTags.length ? allTags.join(", ") : "(none)"}`];
    for (const i of infos) out.push("", render(i));
    await writeOut(`${out.join("\n")}\n`);
  });
}
