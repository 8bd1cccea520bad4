/**
 * `puzzlefs build [-c] [-b BASE_TAG] ROOTFS OCI_DIR:TAG` (spec §1.5, §3).
 * stdout: exactly upstream's line `puzzlefs image manifest digest: <hex>`
 * (the manifest's fs-verity digest, for `--digest`); stderr: a progress bar
 * on a terminal, a note when the tag is replaced, and a summary.
 */
import { InvalidArgumentError, type Command } from "commander";
import { parseImageRef } from "../oci/ref.ts";
import { build, type BuildResult } from "../puzzlefs/builder/build.ts";
import { writeOut } from "./image-arg.ts";
import { formatBytes, progressBar } from "./progress.ts";

export interface BuildCliOptions {
  compression?: boolean;
  baseLayer?: string;
  jobs?: number;
}

function parseJobs(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 256) throw new InvalidArgumentError("must be a whole number from 0 to 256 (0: no worker threads)");
  return n;
}

const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : "n/a");

export function summary(r: BuildResult, compression: boolean): string {
  const s = r.stats;
  const others = [`${s.dirs} dirs`, `${s.symlinks} symlinks`, `${s.hardlinks} hard links`, `${s.others} other`];
  if (s.whiteouts) others.push(`${s.whiteouts} whiteouts`);
  return [
    `built ${r.dir}:${r.tag}${compression ? " (zstd)" : ""}`,
    `  files:        ${s.files} (${others.join(", ")})`,
    `  bytes in:     ${formatBytes(s.bytes)} (${s.bytes})`,
    `  bytes stored: ${formatBytes(s.storedBytes)} in ${s.uniqueChunks} chunk blobs (${formatBytes(s.newBytes)} new), rootfs ${formatBytes(s.rootfsBytes)} (${s.metadataLayers} layer${s.metadataLayers === 1 ? "" : "s"})`,
    `  chunks:       ${s.chunks} (${s.uniqueChunks} unique)`,
    `  dedup ratio:  ${ratio(s.bytes, s.uniqueBytes)}${compression ? `, compression ${ratio(s.uniqueBytes, s.storedBytes)}` : ""}`,
  ].join("\n");
}

export async function buildCommand(rootfs: string, ref: string, opts: BuildCliOptions): Promise<BuildResult> {
  const { dir, tag } = parseImageRef(ref);
  const bar = progressBar("building");
  let r: BuildResult;
  try {
    r = await build(rootfs, dir, tag, {
      compression: opts.compression,
      baseTag: opts.baseLayer,
      workers: opts.jobs,
      onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, p.phase === "metadata" ? "writing metadata" : `${p.chunks} chunks${p.walking ? ", still listing the tree" : ""}`),
    });
  } finally {
    bar.stop();
  }
  if (r.replaced) {
    process.stderr.write(`note: tag ${JSON.stringify(tag)} already existed (${r.replaced}); it now points at the new image, the old manifest and blobs stay in ${dir}\n`);
  }
  await writeOut(`puzzlefs image manifest digest: ${r.manifestVerity}\n`);
  process.stderr.write(`${summary(r, opts.compression ?? false)}\n`);
  return r;
}

export function registerBuild(program: Command): void {
  program
    .command("build")
    .description(
      "Build a PuzzleFS image of the directory ROOTFS into the OCI image layout OCI_DIR (created if missing) under TAG, byte-compatible with upstream puzzlefs. Prints the manifest's fs-verity digest (pin it with --digest).",
    )
    .argument("<ROOTFS>", "the directory to build the image from")
    .argument("<OCI_DIR:TAG>", "where to write the image, e.g. ./images:latest (an existing TAG is replaced)")
    .option("-c, --compression", "compress file data with zstd (seekable format, as upstream `build -c`)")
    .option("-b, --base-layer <TAG>", "delta build: add a layer over the image TAG of the same OCI_DIR")
    .option("-j, --jobs <N>", "threads compressing, hashing and writing chunks (default: one per core, at most 8; 0: none)", parseJobs)
    .addHelpText(
      "after",
      "\nExamples:\n  puzzlefs build ./rootfs ./images:v1\n  puzzlefs build -c ./rootfs ./images:v1\n  puzzlefs build -b v1 ./rootfs-v2 ./images:v2",
    )
    .action(async (rootfs: string, ref: string, opts: BuildCliOptions) => {
      await buildCommand(rootfs, ref, opts);
    });
}
