/**
 * The corpus as PuzzleFS images: `puzzlefs build BASE OCI:base`, then
 * `puzzlefs build -b base DELTA OCI:delta` (a delta layer with whiteouts for
 * what the delta tree deleted), both into one OCI image layout directory,
 * with the compiled CLI (bin/puzzlefs.js) exactly as a user runs it.
 *
 * Cached under `.cache/images/<key>/oci`, where the key hashes what decides
 * the images' bytes: the builder's sources (src/common, src/oci,
 * src/puzzlefs, the build command, the native helper, the lockfile), the
 * corpus generators, and the two trees' manifests (content, mode, owner,
 * links, device numbers; see keyOfManifest). A warm rerun reuses the images;
 * a clean clone builds them cold. Older keys are removed.
 */
import { createHash, type Hash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Manifest } from "./manifest.ts";
import { cacheDir, REPO } from "./paths.ts";
import { run, timed } from "./proc.ts";

/** Tags of the two images; each is served as an export of the same name. */
export const BASE_TAG = "base";
export const DELTA_TAG = "delta";

/** What decides the built bytes besides the trees themselves. */
const KEY_SOURCES = [
  "src/common",
  "src/oci",
  "src/puzzlefs",
  "src/cli/build.ts",
  "native",
  "package-lock.json",
  "integration/lib/corpus.ts",
  "integration/lib/torture.ts",
  "integration/lib/images.ts",
];

export interface CorpusImages {
  /** The OCI image layout directory holding both tags. */
  dir: string;
  baseTag: string;
  deltaTag: string;
  /** true when the images came from the cache (nothing was built). */
  cached: boolean;
  /** The `puzzlefs image manifest digest: HEX` of each build (from the cache on a warm run). */
  digests: { base: string; delta: string };
}

function hashPath(h: Hash, abs: string): void {
  const st = statSync(abs);
  if (st.isDirectory()) {
    for (const n of readdirSync(abs).sort()) hashPath(h, join(abs, n));
    return;
  }
  h.update(`${relative(REPO, abs)}\0${st.size}\0`);
  h.update(readFileSync(abs));
}

/**
 * A manifest as cache-key material: every field the image stores, with inode
 * numbers (which change when the delta tree is copied again) replaced by the
 * hard-link group they stand for.
 */
export function keyOfManifest(m: Manifest): string {
  const groups = new Map<string, number>();
  const lines: string[] = [];
  for (const e of m.values()) {
    const dir = (e.mode & 0o170000) === 0o040000;
    let link = "";
    if (!dir && e.nlink > 1) {
      if (!groups.has(e.ino)) groups.set(e.ino, groups.size);
      link = `#${groups.get(e.ino)}`;
    }
    const size = dir ? "-" : String(e.size);
    lines.push([e.path, e.mode, e.uid, e.gid, e.nlink, link, size, e.rdevMajor, e.rdevMinor, e.sha256 ?? "", e.target ?? ""].join("\0"));
  }
  return lines.join("\n");
}

export function imagesKey(base: Manifest, delta: Manifest): string {
  const h = createHash("sha256");
  for (const p of KEY_SOURCES) hashPath(h, join(REPO, p));
  h.update(keyOfManifest(base)).update("\n--\n").update(keyOfManifest(delta));
  return h.digest("hex").slice(0, 20);
}

const DIGEST_LINE = /^puzzlefs image manifest digest: ([0-9a-f]{64})$/m;

async function puzzlefsBuild(args: string[]): Promise<string> {
  const r = await run(process.execPath, [join(REPO, "bin/puzzlefs.js"), "build", ...args], { cwd: REPO, timeoutMs: 1_800_000 });
  const m = DIGEST_LINE.exec(r.stdout);
  if (!m) throw new Error(`puzzlefs build ${args.join(" ")}: no digest line in its output:\n${r.stdout}\n${r.stderr}`);
  return m[1]!;
}

/**
 * The base and delta images of the corpus, built with the CLI unless the
 * cache has them. Needs the compiled CLI (`npm run build`).
 */
export async function ensureCorpusImages(
  trees: { base: string; delta: string },
  manifests: { base: Manifest; delta: Manifest },
): Promise<CorpusImages> {
  const root = cacheDir("images");
  const key = imagesKey(manifests.base, manifests.delta);
  const home = join(root, key);
  const dir = join(home, "oci");
  const done = join(home, "digests.json");
  for (const old of readdirSync(root)) if (old !== key) rmSync(join(root, old), { recursive: true, force: true });
  if (existsSync(done) && existsSync(dir)) {
    const digests = JSON.parse(readFileSync(done, "utf8")) as CorpusImages["digests"];
    return { dir, baseTag: BASE_TAG, deltaTag: DELTA_TAG, cached: true, digests };
  }
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const tmp = join(home, "oci.tmp");
  const base = await timed(`setup: puzzlefs build (base: Debian minbase + /torture)`, () =>
    puzzlefsBuild([trees.base, `${tmp}:${BASE_TAG}`]),
  );
  const delta = await timed(`setup: puzzlefs build -b ${BASE_TAG} (delta)`, () =>
    puzzlefsBuild(["-b", BASE_TAG, trees.delta, `${tmp}:${DELTA_TAG}`]),
  );
  renameSync(tmp, dir);
  const digests = { base, delta };
  writeFileSync(done, JSON.stringify(digests));
  return { dir, baseTag: BASE_TAG, deltaTag: DELTA_TAG, cached: false, digests };
}
