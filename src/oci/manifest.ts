/**
 * OCI descriptors, image manifests and the image index as PuzzleFS uses them
 * (spec §1.3–1.4): media types, annotation keys, the empty config, and strict
 * parsers that name the offending field. Parsers keep only the fields
 * oci-spec models, so re-serializing drops unknown keys, as upstream does.
 */
import { PfsError } from "../common/errors.ts";
import { parseDigest } from "./digest.ts";
import { parseJson } from "./json.ts";

export const MediaType = {
  MANIFEST: "application/vnd.oci.image.manifest.v1+json",
  INDEX: "application/vnd.oci.image.index.v1+json",
  EMPTY: "application/vnd.oci.empty.v1+json",
  ROOTFS: "application/vnd.puzzlefs.image.rootfs.v1",
  FILEDATA: "application/vnd.puzzlefs.image.filedata.v1",
  FILEDATA_ZSTD: "application/vnd.puzzlefs.image.filedata.v1+zstd",
} as const;

export const Annotation = {
  REF_NAME: "org.opencontainers.image.ref.name",
  /** fs-verity digest (hex) of the rootfs blob, on `layers[0]`. */
  VERITY_ROOT_HASH: "io.puzzlefsoci.puzzlefs.puzzlefs_verity_root_hash",
} as const;

/** The OCI empty descriptor: the 2-byte blob `{}` (spec §1.4). */
export const EMPTY_CONFIG_BYTES = new Uint8Array([0x7b, 0x7d]);
export const EMPTY_CONFIG_HEX = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  /** `sha256:<hex>` exactly as in the JSON. */
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  /** base64, for small embedded blobs such as the empty config. */
  data?: string;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export const EMPTY_CONFIG_DESCRIPTOR: Descriptor = {
  mediaType: MediaType.EMPTY,
  digest: `sha256:${EMPTY_CONFIG_HEX}`,
  size: 2,
  data: "e30=",
};

/** The `platform` upstream records: the build host (spec §1.3). */
export function hostPlatform(): Platform {
  const arch = process.arch === "x64" ? "amd64" : process.arch === "arm64" ? "arm64" : process.arch;
  return { architecture: arch, os: "linux" };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, k: string, what: string, optional: true): string | undefined;
function str(o: Record<string, unknown>, k: string, what: string, optional?: false): string;
function str(o: Record<string, unknown>, k: string, what: string, optional = false): string | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string") throw PfsError.format(what, `field "${k}" must be a string`, { expected: "string", got: v === undefined ? "missing" : typeof v });
  return v;
}

function strMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v)) throw PfsError.format(what, "annotations must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw PfsError.format(what, `annotation "${k}" must be a string`);
    out[k] = x;
  }
  return out;
}

function strList(v: unknown, what: string, k: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw PfsError.format(what, `field "${k}" must be a list of strings`);
  return v as string[];
}

export function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObj(v)) throw PfsError.format(what, "descriptor must be an object");
  const mediaType = str(v, "mediaType", what);
  const digest = str(v, "digest", what);
  parseDigest(digest, `${what} digest`);
  const size = v.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw PfsError.format(what, `field "size" must be a non-negative integer`, { expected: "integer", got: JSON.stringify(size) });
  }
  const d: Descriptor = { mediaType, digest, size };
  const annotations = strMap(v.annotations, what);
  if (annotations) d.annotations = annotations;
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObj(p)) throw PfsError.format(what, "platform must be an object");
    const plat: Platform = { architecture: str(p, "architecture", `${what} platform`), os: str(p, "os", `${what} platform`) };
    const osv = str(p, "os.version", `${what} platform`, true);
    if (osv !== undefined) plat["os.version"] = osv;
    const osf = strList(p["os.features"], `${what} platform`, "os.features");
    if (osf) plat["os.features"] = osf;
    const variant = str(p, "variant", `${what} platform`, true);
    if (variant !== undefined) plat.variant = variant;
    d.platform = plat;
  }
  const urls = strList(v.urls, what, "urls");
  if (urls) d.urls = urls;
  const data = str(v, "data", what, true);
  if (data !== undefined) d.data = data;
  const at = str(v, "artifactType", what, true);
  if (at !== undefined) d.artifactType = at;
  return d;
}

function schemaVersion2(v: Record<string, unknown>, what: string): 2 {
  if (v.schemaVersion !== 2) {
    throw PfsError.format(what, "unsupported schemaVersion", { expected: 2, got: JSON.stringify(v.schemaVersion) });
  }
  return 2;
}

export function parseManifest(bytes: Uint8Array, what = "image manifest"): ImageManifest {
  const v = parseJson(bytes, what);
  if (!isObj(v)) throw PfsError.format(what, "must be a JSON object");
  const m: ImageManifest = {
    schemaVersion: schemaVersion2(v, what),
    config: parseDescriptor(v.config, `${what} config`),
    layers: [],
  };
  if (v.mediaType !== undefined) {
    m.mediaType = str(v, "mediaType", what);
    if (m.mediaType !== MediaType.MANIFEST) {
      throw PfsError.format(what, "wrong mediaType", { expected: MediaType.MANIFEST, got: m.mediaType });
    }
  }
  if (!Array.isArray(v.layers)) throw PfsError.format(what, `field "layers" must be a list`);
  m.layers = v.layers.map((l, i) => parseDescriptor(l, `${what} layers[${i}]`));
  const at = str(v, "artifactType", what, true);
  if (at !== undefined) m.artifactType = at;
  if (v.subject !== undefined) m.subject = parseDescriptor(v.subject, `${what} subject`);
  const ann = strMap(v.annotations, what);
  if (ann) m.annotations = ann;
  return m;
}

export function parseIndex(bytes: Uint8Array, what = "index.json"): ImageIndex {
  const v = parseJson(bytes, what);
  if (!isObj(v)) throw PfsError.format(what, "must be a JSON object");
  const idx: ImageIndex = { schemaVersion: schemaVersion2(v, what), manifests: [] };
  if (v.mediaType !== undefined) idx.mediaType = str(v, "mediaType", what);
  if (!Array.isArray(v.manifests)) throw PfsError.format(what, `field "manifests" must be a list`);
  idx.manifests = v.manifests.map((d, i) => parseDescriptor(d, `${what} manifests[${i}]`));
  const at = str(v, "artifactType", what, true);
  if (at !== undefined) idx.artifactType = at;
  if (v.subject !== undefined) idx.subject = parseDescriptor(v.subject, `${what} subject`);
  const ann = strMap(v.annotations, what);
  if (ann) idx.annotations = ann;
  return idx;
}

/** The tag a descriptor carries, if any. */
export function tagOf(d: Descriptor): string | undefined {
  return d.annotations?.[Annotation.REF_NAME];
}

/**
 * The tag write rule (spec §1.3, ocidir `insert_manifest`): drop every
 * descriptor that carries this tag, then append the new one at the end.
 * Pure: returns a new index.
 */
export function withTaggedManifest(index: ImageIndex, tag: string, desc: Descriptor): ImageIndex {
  const tagged: Descriptor = { ...desc, annotations: { ...(desc.annotations ?? {}), [Annotation.REF_NAME]: tag } };
  return { ...index, manifests: [...index.manifests.filter((d) => tagOf(d) !== tag), tagged] };
}

export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, manifests: [] };
}
