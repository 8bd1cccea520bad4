/**
 * Which server the scenarios test, and how a source tree becomes one of its
 * exports:
 * - "puzzlefs" (the product, the default): the tree is built with
 *   `puzzlefs build` (the delta with `-b base`, see images.ts), and
 *   `puzzlefs serve OCI_DIR --tag base --tag delta` synthesizes the ext4 disks.
 * - "nbdkit" (the differential reference): the tree becomes an ext4 image
 *   with `mke2fs -t ext4 -b 4096 -d TREE`, served by `nbdkit file`. Every
 *   scenario passing against it shows the harness itself judges right.
 * - "puzzlefs-raw": the same mke2fs images served by `puzzlefs serve --raw`
 *   (our NBD server alone, without the ext synthesizer).
 * Chosen with PUZZLEFS_SUT=puzzlefs|nbdkit|puzzlefs-raw.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./proc.ts";
import { REPO } from "./paths.ts";
import type { CorpusImages } from "./images.ts";
import { NbdkitServer, PuzzlefsServer, type Export, type ServerTlsFiles, type ServerUnderTest } from "./server.ts";

export const SUT_KINDS = ["puzzlefs", "nbdkit", "puzzlefs-raw"] as const;
export type SutKind = (typeof SUT_KINDS)[number];

/** PUZZLEFS_SUT, default "puzzlefs". */
export function sutKind(): SutKind {
  const v = process.env.PUZZLEFS_SUT || "puzzlefs";
  if (!(SUT_KINDS as readonly string[]).includes(v)) {
    throw new Error(`PUZZLEFS_SUT=${v}: expected one of ${SUT_KINDS.join(", ")}`);
  }
  return v as SutKind;
}

/** `tls`: serve with TLS required (each server's own flags; see ServerTlsFiles). */
export function makeServer(kind: SutKind, work: string, tls?: ServerTlsFiles): ServerUnderTest {
  return kind === "nbdkit" ? new NbdkitServer(work, tls) : new PuzzlefsServer(work, tls);
}

/**
 * Compile the CLI (bin/puzzlefs.js runs dist/): every mode builds the corpus
 * images with it. Skipped when dist/ was compiled from the same sources
 * (a hash of src/ and the build config kept in dist/.src-hash): `npm ci`
 * has usually just compiled them.
 */
export async function compileCli(): Promise<void> {
  const h = createHash("sha256");
  const walk = (d: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, n.name);
      if (n.isDirectory()) walk(p);
      else h.update(`${p}\0`).update(readFileSync(p));
    }
  };
  walk(join(REPO, "src"));
  for (const f of ["tsconfig.json", "tsconfig.build.json", "package-lock.json"]) h.update(readFileSync(join(REPO, f)));
  const digest = h.digest("hex");
  const stamp = join(REPO, "dist", ".src-hash");
  if (existsSync(join(REPO, "dist/cli/main.js")) && existsSync(stamp) && readFileSync(stamp, "utf8") === digest) return;
  await run("npm", ["run", "build", "--silent"], { cwd: REPO });
  writeFileSync(stamp, digest);
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
export async function prepareExports(
  kind: SutKind,
  trees: { base: string; delta: string },
  images: CorpusImages,
  work: string,
): Promise<PreparedExports> {
  const { base, delta } = trees;
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
      return {
        base: { name: images.baseTag, oci: { dir: images.dir, tag: images.baseTag } },
        delta: { name: images.deltaTag, oci: { dir: images.dir, tag: images.deltaTag } },
      };
  }
}

export function exportBytes(e: Export): number {
  return e.image ? statSync(e.image).size : 0;
}
