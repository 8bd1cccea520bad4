/**
 * `puzzlefs extract OCI_DIR:TAG DEST [--force]` (spec §4): write the image
 * out as a directory, safely (nothing outside DEST, symlinks never followed;
 * see puzzlefs/builder/extract.ts). Every chunk is verified by sha256 as it
 * is read. stderr: a progress bar on a terminal, then a summary and one
 * note per entry that was not created (sockets, devices without root).
 */
import type { Command } from "commander";
import { extract, type ExtractStats } from "../puzzlefs/builder/extract.ts";
import { addImageOptions, openImageArg, type ImageOptions } from "./image-arg.ts";
import { formatBytes, progressBar } from "./progress.ts";

export interface ExtractCliOptions extends ImageOptions {
  force?: boolean;
}

const MAX_NOTES = 20;

export function extractSummary(dest: string, s: ExtractStats): string {
  const lines = [
    `extracted into ${dest}: ${s.files} files (${formatBytes(s.bytes)}), ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.hardlinks} hard links, ${s.fifos} fifos, ${s.devices} devices`,
  ];
  for (const k of s.skipped.slice(0, MAX_NOTES)) lines.push(`note: skipped ${k.path}: ${k.reason}`);
  if (s.skipped.length > MAX_NOTES) lines.push(`note: … and ${s.skipped.length - MAX_NOTES} more skipped entries`);
  return lines.join("\n");
}

export async function extractCommand(ref: string, dest: string, opts: ExtractCliOptions): Promise<ExtractStats> {
  const img = await openImageArg(ref, opts);
  const total = img.tree.logicalBytes;
  const bar = progressBar("extracting");
  let stats: ExtractStats;
  try {
    stats = await extract(img.tree, dest, { force: opts.force, onProgress: (b) => bar.update(b, total) });
  } finally {
    bar.stop();
    img.source.close?.();
  }
  process.stderr.write(`${extractSummary(dest, stats)}\n`);
  return stats;
}

export function registerExtract(program: Command): void {
  addImageOptions(
    program
      .command("extract")
      .description(
        "Extract a PuzzleFS image into the directory DEST (created if missing): contents, modes, hard links, symlinks, xattrs and, as root, owners and device nodes. Nothing is written outside DEST.",
      )
      .argument("<OCI_DIR:TAG>", "the image: OCI_DIR:TAG, or oci://HOST[:PORT]/REPO:TAG or …/REPO@sha256:DIGEST in a registry")
      .argument("<DEST>", "the directory to extract into; must be empty or new unless --force")
      .option("--force", "extract into an existing non-empty DEST, replacing entries that are in the way"),
  )
    .addHelpText("after", "\nExample:\n  puzzlefs extract ./images:latest ./rootfs-copy")
    .action(async (ref: string, dest: string, opts: ExtractCliOptions) => {
      await extractCommand(ref, dest, opts);
    });
}
