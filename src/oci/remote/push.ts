/**
 * `push`: copy one tagged image of a local OCI layout to a registry.
 *
 * Order and cost: the manifest is prepared and size-checked first (nothing
 * is uploaded for a manifest the registry would refuse), then every distinct
 * blob (config and layers) is HEAD-checked and uploaded only when missing,
 * by a bounded pool of workers — one HEAD per present blob, HEAD + POST + PUT
 * per new one, so the work is linear in the number of chunks — and the
 * manifest goes last (registries refuse a manifest whose blobs they lack).
 *
 * The pushed manifest carries `mediaType` (image-spec 1.1 SHOULD; registries
 * use it with the Content-Type to recognize the manifest). A local manifest
 * without it (upstream's builder omits it) is re-serialized as canonical JSON
 * with that one key added, so its digest differs from the local one; a local
 * manifest that already has it is pushed byte for byte, same digest. The
 * result reports both digests.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { parseDigest, sha256Hex } from "../digest.ts";
import { canonicalJsonBytes, parseJson } from "../json.ts";
import type { OciLayout } from "../layout.ts";
import { MediaType, parseManifest, type Descriptor } from "../manifest.ts";
import { MAX_MANIFEST_BYTES, RegistryClient, type RegistryClientOptions } from "./client.ts";
import { formatRemoteRef, type RemoteRef } from "./ref.ts";

export interface PushOptions extends RegistryClientOptions {
  /** Blobs in flight at once. Default 8. */
  parallel?: number;
  /** Called after each blob (uploaded or found present). */
  onBlob?: (done: number, total: number) => void;
}

export interface PushResult {
  /** `oci://host/repo:tag@sha256:…` */
  ref: string;
  /** The pushed manifest's digest (`sha256:…`) and size. */
  digest: string;
  size: number;
  manifestBytes: Uint8Array;
  /** The local manifest's digest; differs from `digest` when mediaType had to be added. */
  localDigest: string;
  blobs: { total: number; uploaded: number; present: number; bytesUploaded: number };
}

/** The manifest as it will be pushed: with `mediaType`, otherwise unchanged (see the module comment). */
export function manifestForPush(bytes: Uint8Array, what: string): Uint8Array {
  const v = parseJson(bytes, what);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw PfsError.format(what, "must be a JSON object");
  const obj = v as Record<string, unknown>;
  if (obj.mediaType !== undefined) return bytes;
  return canonicalJsonBytes({ ...obj, mediaType: MediaType.MANIFEST });
}

function tooBig(what: string, size: number, layers: number | string): PfsError {
  return new PfsError(ErrorCode.LIMIT, `${what}: ${size} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte (4 MiB) manifest limit registries enforce (${layers} layer descriptors)`, {
    hint: "build the image with larger chunks (fewer chunk blobs); about 27,000 chunk descriptors fit in 4 MiB",
    data: { what, size, limit: MAX_MANIFEST_BYTES },
  });
}

async function blobBytes(layout: OciLayout, d: Descriptor, what: string): Promise<Uint8Array> {
  const hex = parseDigest(d.digest, what);
  if (!(await layout.blobs.has(hex)) && d.data !== undefined) {
    // An embedded blob (the empty config carries `data`) need not exist as a file.
    const bytes = new Uint8Array(Buffer.from(d.data, "base64"));
    const got = sha256Hex(bytes);
    if (got !== hex) throw PfsError.digest(`${what} (embedded data)`, hex, got);
    return bytes;
  }
  return layout.blobs.get(hex, { what, expectedSize: d.size });
}

export async function pushImage(layout: OciLayout, tag: string, dest: RemoteRef, opts: PushOptions = {}): Promise<PushResult> {
  if (dest.digest !== undefined) throw PfsError.usage(`push destination ${formatRemoteRef(dest)} names a digest`, "push to a tag: oci://HOST/REPO:TAG");
  const destTag = dest.tag ?? tag;
  const what = `manifest of ${layout.dir}:${tag}`;
  let local;
  try {
    local = await layout.readManifest(tag);
  } catch (e) {
    // The layout reader caps manifests at the same 4 MiB: say why that matters here.
    if (e instanceof PfsError && e.code === ErrorCode.LIMIT) throw tooBig(what, (await layout.resolve(tag)).size, "more than 27000");
    throw e;
  }
  const bytes = manifestForPush(local.bytes, what);
  const manifest = parseManifest(bytes, what);
  if (bytes.length > MAX_MANIFEST_BYTES) throw tooBig(what, bytes.length, manifest.layers.length);
  const hex = sha256Hex(bytes);

  // Distinct blobs, config first; duplicate layer descriptors (shared chunks) upload once.
  const blobs = new Map<string, Descriptor>();
  for (const d of [manifest.config, ...manifest.layers]) if (!blobs.has(d.digest)) blobs.set(d.digest, d);
  const client = new RegistryClient({ ...dest, tag: destTag }, { ...opts, push: true });
  const result: PushResult = {
    ref: formatRemoteRef({ ...dest, tag: destTag }, { digest: hex }),
    digest: `sha256:${hex}`,
    size: bytes.length,
    manifestBytes: bytes,
    localDigest: `sha256:${local.hex}`,
    blobs: { total: blobs.size, uploaded: 0, present: 0, bytesUploaded: 0 },
  };
  try {
    const queue = [...blobs.values()];
    let done = 0;
    const worker = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const bhex = parseDigest(d.digest, what);
        const bwhat = `blob ${d.digest} (${d.mediaType})`;
        const have = await client.headBlob(bhex);
        if (have !== null && (have === d.size || have < 0)) {
          result.blobs.present++;
        } else {
          const data = await blobBytes(layout, d, bwhat);
          await client.uploadBlob(bhex, data);
          result.blobs.uploaded++;
          result.blobs.bytesUploaded += data.length;
        }
        opts.onBlob?.(++done, blobs.size);
      }
    };
    const n = Math.max(1, Math.min(opts.parallel ?? 8, blobs.size));
    const workers = Array.from({ length: n }, worker);
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    const said = await client.putManifest(destTag, bytes, MediaType.MANIFEST);
    if (said !== undefined && said !== result.digest) {
      throw new PfsError(ErrorCode.DIGEST, `${result.ref}: the registry stored the manifest as ${said}, not ${result.digest}`, { data: { what: result.ref, expected: result.digest, got: said } });
    }
    log.oci("pushed %s (%d blobs uploaded, %d present)", result.ref, result.blobs.uploaded, result.blobs.present);
    return result;
  } finally {
    client.close();
  }
}
