/**
 * Which server the scenarios test, and how a source tree becomes one of its
 * exports:
 * - "nbdkit" (stand-in): the tree becomes an ext4 image with
 *   `mke2fs -t ext4 -b 4096 -d TREE`, served by `nbdkit file`.
 * - "puzzlefs" (the product): the tree is built with `puzzlefs build` (the
 *   delta with `-b BASE`), and `puzzlefs serve` synthesizes the ext4 disk.
 * Chosen with PUZZLEFS_SUT=nbdkit|puzzlefs.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { run } from "./proc.ts";
import { REPO } from "./paths.ts";
import { NbdkitServer, PuzzlefsServer, type Export, type ServerTlsFiles, type ServerUnderTest } from "./server.ts";

export const SUT_KINDS = ["nbdkit", "puzzlefs-raw", "puzzlefs"] as const;
export type SutKind = (typeof SUT_KINDS)[number];

/**
 * PUZZLEFS_SUT selects the server and how exports are made:
 * - nbdkit: mke2fs images served by nbdkit (the reference; checks the harness)
 * - puzzlefs-raw: the same mke2fs images served by `puzzlefs serve --raw`
 *   (our NBD server with every client, before the ext synthesizer)
 * - puzzlefs: `puzzlefs build` images served as synthesized ext4 disks
 */
export function sutKind(): SutKind {
  const v = process.env.PUZZLEFS_SUT ?? "puzzlefs-raw";
  if (!(SUT_KINDS as readonly string[]).includes(v)) {
    throw new Error(`PUZZLEFS_SUT=${v}: expected one of ${SUT_KINDS.join(", ")}`);
  }
  return v as SutKind;
}

/** `tls`: serve with TLS required (each server's own flags; see ServerTlsFiles). */
export function makeServer(kind: SutKind, work: string, tls?: ServerTlsFiles): ServerUnderTest {
  return kind === "nbdkit" ? new NbdkitServer(work, tls) : new PuzzlefsServer(work, tls);
}

/** Compile the CLI (bin/puzzlefs.js runs dist/) when the server under test is ours. */
export async function prepareServer(kind: SutKind): Promise<void> {
  if (kind !== "nbdkit") await run("npm", ["run", "build", "--silent"], { cwd: REPO });
}

/** Bytes and inodes a tree needs, from du (allocated bytes) and a count of names. */
async function treeSize(dir: string): Promise<{ bytes: number; inodes: number }> {
  const du = await run("du", ["-s", "--block-size=1", dir]);
  const inodes = await run("sh", ["-c", 'find "$1" | wc -l', "sh", dir]);
  return { bytes: Number(du.stdout.split(/\s/)[0]), inodes: Number(inodes.stdout.trim()) };
}

/**
 * An ext4 image of `tree` made by e2fsprogs (the stand-in for our synthesized
 * disk): 4 KiB blocks so nbd-client -b 4096 works, sized with room to spare.
 */
export async function makeExt4Image(tree: string, out: string, fsType = "ext4"): Promise<string> {
  const { bytes, inodes } = await treeSize(tree);
  const size = Math.ceil((bytes * 1.3 + inodes * 512 + (64 << 20)) / (4 << 20)) * (4 << 20);
  await run("mke2fs", [
    "-q",
    "-F",
    "-t",
    fsType,
    "-b",
    "4096",
    "-N",
    String(Math.ceil(inodes * 1.2) + 1024),
    "-L",
    "puzzlefs-test",
    "-d",
    tree,
    out,
    String(size / 1024) + "k",
  ]);
  await run("e2fsck", ["-fn", out]);
  return out;
}

export interface PreparedExports {
  base: Export;
  delta: Export;
}

/** Turn the base and delta trees into the two exports every scenario uses. */
export async function prepareExports(kind: SutKind, base: string, delta: string, work: string): Promise<PreparedExports> {
  switch (kind) {
    case "nbdkit":
    case "puzzlefs-raw": {
      const [b, d] = await Promise.all([
        makeExt4Image(base, join(work, "base.ext4")),
        makeExt4Image(delta, join(work, "delta.ext4")),
      ]);
      return { base: { name: "base", image: b }, delta: { name: "delta", image: d } };
    }
    case "puzzlefs":
      throw new Error("PUZZLEFS_SUT=puzzlefs: `puzzlefs build` is not on this branch yet");
  }
}

export function exportBytes(e: Export): number {
  return e.image ? statSync(e.image).size : 0;
}
