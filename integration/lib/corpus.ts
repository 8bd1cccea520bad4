/**
 * The corpus the scenarios serve: a real Debian root filesystem
 * (`debootstrap --variant=minbase bookworm`, cached under .cache/corpus/
 * between runs) with the generated torture tree at /torture, and a "delta"
 * tree: a later version of it (files changed, added, removed, a type changed)
 * for the many-tags scenario, where it is built as a delta over the base.
 */
import { existsSync, renameSync, rmSync, writeFileSync, mkdirSync, chmodSync, symlinkSync, chownSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";
import { run, timed } from "./proc.ts";
import { generateTortureTree, prng, type TortureSummary } from "./torture.ts";

export const DEBIAN_SUITE = "bookworm";
export const DEBIAN_MIRROR = "http://deb.debian.org/debian";

/**
 * The debootstrap rootfs, made once and kept: `.cache/corpus/debian-minbase`.
 * A half-made one (interrupted run) is discarded and made again.
 */
export async function ensureDebianRootfs(): Promise<string> {
  const dir = join(cacheDir("corpus"), "debian-minbase");
  const done = `${dir}.done`;
  if (existsSync(done) && existsSync(dir)) return dir;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  await timed("setup: debootstrap --variant=minbase (cold cache only)", () =>
    run("debootstrap", ["--variant=minbase", DEBIAN_SUITE, tmp, DEBIAN_MIRROR], { timeoutMs: 1_800_000 }),
  );
  // Nothing in the tree is needed for the image, but apt's downloaded .debs are 30% of it.
  rmSync(join(tmp, "var/cache/apt/archives"), { recursive: true, force: true });
  mkdirSync(join(tmp, "var/cache/apt/archives/partial"), { recursive: true });
  renameSync(tmp, dir);
  writeFileSync(done, `${DEBIAN_SUITE} ${DEBIAN_MIRROR}\n`);
  return dir;
}

export interface Corpus {
  /** Debian minbase + /torture. */
  base: string;
  /** The base with changes: see makeDelta. */
  delta: string;
  torture: TortureSummary;
}

/**
 * Make the base tree (debootstrap rootfs + freshly generated /torture) and the
 * delta tree (a copy of the base, then changed). The torture tree is
 * regenerated every run: it is deterministic and takes about a second.
 */
export async function prepareCorpus(): Promise<Corpus> {
  const base = await ensureDebianRootfs();
  const torture = await generateTortureTree(join(base, "torture"));
  const delta = join(cacheDir("corpus"), "delta");
  rmSync(delta, { recursive: true, force: true });
  await run("cp", ["-a", base, delta]);
  makeDelta(delta);
  return { base, delta, torture };
}

/** Paths (relative to the root) the delta deletes: whiteouts in the delta layer. */
export const DELTA_REMOVED = ["usr/share/doc", "torture/files/one-byte", "torture/bigdir"] as const;
/** Paths only the delta has. */
export const DELTA_ADDED = ["delta-added", "delta-added/sub/new-file", "delta-added/readme", "delta-added/link"] as const;
/** Paths whose type changed: a file became a directory, a directory a symlink. */
export const DELTA_RETYPED = { "torture/files/text.txt": "dir", "torture/deep": "symlink" } as const;

/**
 * Turn a copy of the base into "version 2": content changes, a new directory,
 * deletions (which a PuzzleFS delta layer records as whiteouts), a file that
 * became a directory, a directory that became a symlink, metadata-only changes.
 */
export function makeDelta(dir: string): void {
  const rnd = prng(2);
  const p = (rel: string): string => join(dir, rel);
  writeFileSync(p("etc/hostname"), "puzzlefs-delta\n");
  writeFileSync(p("etc/motd"), "This is the delta build.\n");
  writeFileSync(p("torture/files/random-multi-chunk"), rnd(300_000)); // shrunk and rewritten
  mkdirSync(p("delta-added/sub"), { recursive: true });
  writeFileSync(p("delta-added/sub/new-file"), rnd(70_000));
  writeFileSync(p("delta-added/readme"), "added in the delta\n");
  symlinkSync("sub/new-file", p("delta-added/link"));
  for (const r of DELTA_REMOVED) rmSync(p(r), { recursive: true });
  // A file replaced by a directory, and a directory replaced by a symlink.
  rmSync(p("torture/files/text.txt"));
  mkdirSync(p("torture/files/text.txt"));
  writeFileSync(p("torture/files/text.txt/now-a-dir"), "x");
  rmSync(p("torture/deep"), { recursive: true });
  symlinkSync("files", p("torture/deep"));
  // Metadata only: same bytes, new mode and owner.
  chmodSync(p("torture/files/block-4096"), 0o600);
  chownSync(p("torture/files/block-4097"), 4242, 4343);
}
