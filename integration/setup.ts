/**
 * Global setup of the integration suite (vitest globalSetup): runs once
 * before the scenario files. Fetches and assembles the guest, makes the
 * corpus (Debian minbase + torture tree, and its delta), takes their
 * manifests on the host, builds both trees into one OCI image directory with
 * `puzzlefs build` (tags "base" and "delta", the delta over the base; cached
 * in .cache/images/), and turns them into exports of the server under test.
 * Hands paths to the test files through vitest's provide/inject.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { prepareCorpus } from "./lib/corpus.ts";
import { ensureGuestAssets, type GuestAssets } from "./lib/guest-assets.ts";
import { ensureCorpusImages, type CorpusImages } from "./lib/images.ts";
import { buildManifest, manifestToJson, type Manifest } from "./lib/manifest.ts";
import { CACHE } from "./lib/paths.ts";
import { recordTiming, timed } from "./lib/proc.ts";
import type { Export } from "./lib/server.ts";
import { compileCli, prepareExports, sutKind, type SutKind } from "./lib/sut.ts";

export interface TreeInfo {
  /** The source tree on the host. */
  tree: string;
  /** JSON file with its manifest (manifest.ts). */
  manifest: string;
  entries: number;
  export: Export;
}

export interface IntegrationContext {
  kind: SutKind;
  assets: GuestAssets;
  base: TreeInfo;
  delta: TreeInfo;
  /** The corpus built with `puzzlefs build` (whatever the server under test). */
  images: CorpusImages;
  /** Scratch root for this run: .cache/run */
  runDir: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    integration: IntegrationContext;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  if (process.getuid?.() !== 0) {
    throw new Error("the integration suite runs as root (loop mounts, device nodes, trusted.* xattrs)");
  }
  const t0 = performance.now();
  const runDir = join(CACHE, "run");
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const kind = sutKind();

  const assets = await timed("setup: guest kernel, busybox, nbd-client, initramfs", ensureGuestAssets);
  const corpus = await timed("setup: corpus (debootstrap rootfs + torture tree + delta)", prepareCorpus);
  const manifests = await timed("setup: host manifests", async () => ({
    base: buildManifest(corpus.base),
    delta: buildManifest(corpus.delta),
  }));
  await timed("setup: compile the CLI (npm run build)", compileCli);
  const images = await timed("setup: corpus images (puzzlefs build, or the cache)", () =>
    ensureCorpusImages(corpus, manifests),
  );
  const exportsDir = join(runDir, "exports");
  mkdirSync(exportsDir);
  const exp = await timed(`setup: exports for ${kind}`, () => prepareExports(kind, corpus, images, exportsDir));
  const info = (name: "base" | "delta", tree: string, m: Manifest, e: Export): TreeInfo => {
    const file = join(runDir, `${name}.manifest.json`);
    writeFileSync(file, manifestToJson(m));
    return { tree, manifest: file, entries: m.size, export: e };
  };
  const base = info("base", corpus.base, manifests.base, exp.base);
  const delta = info("delta", corpus.delta, manifests.delta, exp.delta);
  process.stdout.write(
    `integration setup: server under test ${kind}; base ${base.entries} entries, delta ${delta.entries}; ` +
      `images ${images.cached ? "cached" : "built"} in ${images.dir}; ` +
      `kernel ${assets.kver}; ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  project.provide("integration", { kind, assets, base, delta, images, runDir });
  recordTiming("setup: total", (performance.now() - t0) / 1000);
  return () => printTimings(runDir);
}

/** The wall times of this run, one line each, in the order they were taken. */
function printTimings(runDir: string): void {
  const file = join(runDir, "timings.tsv");
  if (!existsSync(file)) return;
  const rows = readFileSync(file, "utf8").trim().split("\n").map((l) => l.split("\t"));
  process.stdout.write(`\nIntegration wall times (s):\n${rows.map(([s, l]) => `  ${s!.padStart(7)}  ${l}`).join("\n")}\n`);
}
