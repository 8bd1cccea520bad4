/**
 * Where an image's manifest and blobs come from, behind one small seam so
 * the reader does not care: a local OCI layout (`OCI_DIR:TAG`) or a registry
 * (`oci://…`, see remote/source.ts). Both hand out only verified bytes.
 */
import type { BlobReadOptions, VerifiedBlob } from "./blobs.ts";
import type { OciLayout, ResolvedManifest } from "./layout.ts";

export interface BlobSource {
  /** The whole blob after its sha256 matched `hex`. */
  get(hex: string, opts?: BlobReadOptions): Promise<Uint8Array>;
  /** The same, with range reads into it. */
  open(hex: string, opts?: BlobReadOptions): Promise<VerifiedBlob>;
  /**
   * Optional: warm whatever is slow (a registry fetch into the local cache),
   * at low priority, without keeping the bytes in memory.
   */
  prefetch?(hex: string, opts?: BlobReadOptions): Promise<void>;
}

export interface ImageSource {
  /** The location as the user wrote it: an OCI directory, or `oci://host/repo`. */
  readonly location: string;
  /** The tag, or `@sha256:…` for an image pinned by digest. */
  readonly reference: string;
  /** How messages name the image's manifest: `tag "x"` or `oci://host/repo:x@sha256:…`. */
  readonly label: string;
  readonly blobs: BlobSource;
  /** The image manifest, verified; the same one for the life of the source (a moving tag does not move it). */
  readManifest(): Promise<ResolvedManifest>;
  /** Release sockets and the like. */
  close?(): void;
}

/** `OCI_DIR:TAG`. The tag is resolved on each readManifest call, as the layout reader always did. */
export function localImageSource(layout: OciLayout, tag: string): ImageSource {
  return {
    location: layout.dir,
    reference: tag,
    label: `tag ${JSON.stringify(tag)}`,
    blobs: layout.blobs,
    readManifest: () => layout.readManifest(tag),
  };
}
