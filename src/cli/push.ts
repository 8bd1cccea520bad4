/**
 * `puzzlefs push OCI_DIR:TAG oci://HOST[:PORT]/REPO[:TAG]`: upload one image
 * to a registry (library: oci/remote/push.ts) and print where it went, by
 * digest. The destination tag defaults to the local one.
 */
import type { Command } from "commander";
import { PfsError } from "../common/errors.ts";
import { OciLayout } from "../oci/layout.ts";
import { parseImageRef } from "../oci/ref.ts";
import { pushImage, type PushResult } from "../oci/remote/push.ts";
import { parseRemoteRef } from "../oci/remote/ref.ts";
import { fsVerityHex } from "../puzzlefs/verity.ts";
import { writeOut } from "./image-arg.ts";
import { addRegistryOptions, registryClientOptions, type RegistryCliOptions } from "./remote-args.ts";

export function renderPush(r: PushResult): string {
  const same = r.digest === r.localDigest;
  return [
    `pushed:          ${r.ref}`,
    `manifest:        ${r.digest} (${r.size} bytes)${same ? "" : `; local ${r.localDigest} (mediaType added for the registry)`}`,
    `fs-verity:       ${fsVerityHex(r.manifestBytes)} (pin the pushed image with --digest)`,
    `blobs:           ${r.blobs.total} (${r.blobs.uploaded} uploaded, ${r.blobs.bytesUploaded} bytes; ${r.blobs.present} already present)`,
  ].join("\n");
}

export function registerPush(program: Command): void {
  addRegistryOptions(
    program
      .command("push")
      .description("Upload an image of an OCI layout to a registry: missing blobs first (in parallel), then the manifest, with mediaType. Prints the pushed digest.")
      .argument("<OCI_DIR:TAG>", "the local image")
      .argument("<DEST>", "oci://HOST[:PORT]/REPO[:TAG] (the tag defaults to the local one)")
      .option("--parallel <n>", "blobs uploaded at once", "8")
      .option("--json", "print JSON instead of text"),
    { cache: false },
  ).action(async (src: string, dest: string, opts: RegistryCliOptions & { parallel: string; json?: boolean }) => {
    const { dir, tag } = parseImageRef(src);
    const ref = parseRemoteRef(dest, { tagOptional: true });
    const parallel = Number(opts.parallel);
    if (!/^\d+$/.test(opts.parallel) || parallel < 1 || parallel > 64) throw PfsError.usage(`--parallel: "${opts.parallel}" is not an integer from 1 to 64`);
    const clientOpts = await registryClientOptions(ref, opts);
    const layout = await OciLayout.open(dir);
    const r = await pushImage(layout, tag, ref, { ...clientOpts, parallel, concurrency: parallel });
    if (opts.json) {
      const { manifestBytes, ...rest } = r;
      await writeOut(`${JSON.stringify({ ...rest, fsVerity: fsVerityHex(manifestBytes) }, null, 2)}\n`);
    } else {
      await writeOut(`${renderPush(r)}\n`);
    }
  });
}
