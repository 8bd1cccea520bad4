/**
 * `puzzlefs export OCI_DIR:TAG OUT.img [--mtime N]`: write the synthesized
 * ext4 image (src/ext) to a file, sparse where it is zero. The file appears
 * under its name only when complete (written as OUT.img.partial-PID, then
 * renamed). Also the text `puzzlefs info --ext` prints for an image.
 */
import { rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { ExtImage, describe, exportImage, planExtImage, type ExtDescription } from "../ext/index.ts";
import { MTIME_MAX, MTIME_MIN } from "../ext/layout/options.ts";
import { OciLayout } from "../oci/layout.ts";
import { openImage, type PuzzleImage } from "../puzzlefs/reader/image.ts";
import type { ImageExportOpener, ServedExport } from "./serve.ts";
import { addImageOptions, openImageArg, writeOut, type ImageOptions } from "./image-arg.ts";
import { isRemoteRef } from "../oci/remote/ref.ts";
import { openRemoteExports } from "./remote-serve.ts";

export interface ExportOptions extends ImageOptions {
  mtime?: number;
  force?: boolean;
  /** Show a progress bar (default: when stderr is a TTY). */
  progress?: boolean;
}

/** `--mtime`: whole seconds since the epoch, in the range ext4 stores. */
export function parseMtime(v: string): number {
  if (!/^-?\d+$/.test(v.trim())) throw PfsError.usage(`--mtime ${JSON.stringify(v)}: not an integer`, "give seconds since 1970-01-01, e.g. --mtime 0 or --mtime $(date +%s)");
  const n = Number(v);
  if (n < MTIME_MIN || n > MTIME_MAX) throw PfsError.usage(`--mtime ${v}: outside what ext4 stores`, `use ${MTIME_MIN}..${MTIME_MAX}`);
  return n;
}

/**
 * Plan the ext image of an opened PuzzleFS image: UUID and hash seed from its
 * rootfs digest, label from its tag. The rootfs (not the manifest) is the
 * filesystem's identity: it pins every inode and every chunk digest, while a
 * manifest can be rewritten around it (a push adds `mediaType`, a copy may
 * reorder layers) without changing a byte of the tree. So the same tree served
 * from a layout or from a registry is the same disk, and a client that
 * reconnects to either sees the same UUID.
 */
export function planFor(img: PuzzleImage, mtime?: number): ExtImage {
  return new ExtImage(planExtImage(img.tree, { mtime, digest: `sha256:${img.rootfs.hex}`, label: img.tag }));
}

/**
 * `serve`'s opener for OCI directories: each tag (or every tag) becomes an
 * export named after it, its synthesized ext image planned once and its
 * chunk cache (`cacheSize` bytes) shared by all connections. Times come from
 * $SOURCE_DATE_EPOCH, else 0, so a served tag equals `puzzlefs export` of it.
 */
export const openExtExports: ImageExportOpener = async (ociDir, tags, { cacheSize, registry, prefetch }) => {
  if (isRemoteRef(ociDir)) return openRemoteExports(ociDir, tags, { cacheSize, registry, prefetch });
  const names = tags.length > 0 ? tags : await (await OciLayout.open(ociDir)).tags();
  const out = new Map<string, ServedExport>();
  for (const tag of names) {
    const dev = planFor(await openImage(ociDir, tag, { cacheBytes: cacheSize }));
    const d = describe(dev.plan);
    for (const w of d.warnings) process.stderr.write(`puzzlefs: warning: ${tag}: ${w}\n`);
    out.set(tag, { device: dev, description: `ext4 image of ${ociDir}:${tag} (${d.inodesUsed} inodes, uuid ${d.uuid})` });
  }
  return out;
};

const MiB = 2 ** 20;
const fmtBytes = (b: number): string => (b >= 10 * 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / MiB).toFixed(1)} MiB`);

export async function exportCommand(ref: string, out: string, opts: ExportOptions = {}): Promise<ExtDescription> {
  if (!opts.force) {
    const exists = await stat(out).then(
      () => true,
      (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? false : Promise.reject(PfsError.io(out, e))),
    );
    if (exists) throw new PfsError(ErrorCode.EXISTS, `${out}: already exists`, { hint: "choose another name or pass --force to replace it" });
  }
  const img = await openImageArg(ref, opts);
  const dev = planFor(img, opts.mtime);
  const info = describe(dev.plan);
  for (const w of info.warnings) process.stderr.write(`puzzlefs: warning: ${w}\n`);
  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format: "exporting [{bar}] {percentage}% {done}/{all} {eta_formatted}",
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: Boolean(process.stderr.isTTY),
          // Asked for explicitly off a terminal (--progress in a log): print plain lines.
          noTTYOutput: !process.stderr.isTTY,
          notTTYSchedule: 2000,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  try {
    let started = false;
    await exportImage(dev, partial, (done, total) => {
      if (!bar) return;
      if (!started) {
        bar.start(total, 0, { done: fmtBytes(0), all: fmtBytes(total) });
        started = true;
      }
      bar.update(done, { done: fmtBytes(done), all: fmtBytes(total) });
    });
    bar?.stop();
    await rename(partial, out).catch((e: unknown) => Promise.reject(PfsError.io(`rename to ${out}`, e)));
  } catch (e) {
    bar?.stop();
    await unlink(partial).catch(() => undefined);
    throw e;
  } finally {
    img.source.close?.();
  }
  return info;
}

/** The lines `info --ext` and `export` print about a planned image. */
export function renderExt(d: ExtDescription): string {
  const kinds = Object.entries(d.blocksByKind)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return [
    `ext size:        ${d.size} bytes (${d.blocks} blocks of ${d.blockSize}, ${d.groups} group${d.groups === 1 ? "" : "s"})`,
    `ext inodes:      ${d.inodesUsed} used of ${d.inodeCount} (${d.inodesPerGroup} per group)`,
    `ext free blocks: ${d.freeBlocks}`,
    `ext uuid:        ${d.uuid}`,
    `ext label:       ${d.label}`,
    `ext features:    ${d.features.join(" ")}`,
    `ext blocks:      ${kinds}`,
  ].join("\n");
}

export function registerExport(program: Command): void {
  addImageOptions(
    program
      .command("export")
      .description("Write the image as a read-only ext4 disk image file (sparse where it is zero): what `puzzlefs serve` exports, as a file.")
      .argument("<OCI_DIR:TAG>", "an OCI image layout directory and the tag of the image, or oci://HOST[:PORT]/REPO:TAG|@sha256:DIGEST")
      .argument("<OUT.img>", "the image file to write")
      .option("--mtime <seconds>", "time stamp of every inode (default: $SOURCE_DATE_EPOCH, else 0)", parseMtime)
      .option("--force", "replace OUT.img if it exists")
      .option("--no-progress", "no progress bar (the default off a terminal)"),
  ).action(async (ref: string, out: string, opts: ExportOptions) => {
    const d = await exportCommand(ref, out, { ...opts, progress: opts.progress === false ? false : undefined });
    await writeOut(`${out}\n${renderExt(d)}\n`);
  });
}
