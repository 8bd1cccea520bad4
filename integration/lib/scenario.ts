/**
 * What every scenario file shares: the context from global setup, a scratch
 * directory, booting the guest against the server under test, and checking
 * what the guest saw against the host's manifest. A failure message carries
 * the differences and the guest's console log (without the per-file lines).
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import type { IntegrationContext } from "../setup.ts";
import { compareManifests, manifestFromJson, parseGuestReport, type Manifest } from "./manifest.ts";
import { bootGuest, consoleSummary, type BootOptions, type BootResult } from "./qemu.ts";
import { recordTiming, sleep } from "./proc.ts";
import type { ServerUnderTest } from "./server.ts";

export function integration(): IntegrationContext {
  return inject("integration");
}

const manifests = new Map<string, Manifest>();
export function loadManifest(file: string): Manifest {
  let m = manifests.get(file);
  if (!m) {
    m = manifestFromJson(readFileSync(file, "utf8"));
    manifests.set(file, m);
  }
  return m;
}

/** A fresh scratch directory under .cache/run/. */
export function workDir(name: string): string {
  const d = join(integration().runDir, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * Wall time of a whole scenario file (server start to stop): call in
 * beforeAll, call the result in afterAll.
 */
export function scenarioTimer(label: string): () => void {
  const t0 = performance.now();
  return () => recordTiming(`scenario ${label}`, (performance.now() - t0) / 1000);
}

/** Guest boots stop after this long: a full-corpus verify takes ~30 s, a hung one never ends. */
export const GUEST_TIMEOUT_MS = 300_000;

/** `assets`: another guest (e.g. withExtraFiles); default: the suite's. */
export type GuestRun = Omit<BootOptions, "assets" | "log" | "timeoutMs"> & { timeoutMs?: number; assets?: BootOptions["assets"] };

/** Boot the guest; print its wall time under `label`. */
export async function runGuest(label: string, dir: string, o: GuestRun): Promise<BootResult> {
  const log = join(dir, `${label.replace(/[^\w.-]+/g, "_")}.console.log`);
  const r = await bootGuest({ ...o, assets: o.assets ?? integration().assets, log, timeoutMs: o.timeoutMs ?? GUEST_TIMEOUT_MS });
  recordTiming(`guest: ${label}`, r.seconds);
  return r;
}

export class GuestFailure extends Error {}

/**
 * Check that the guest finished cleanly and that device `dev` showed exactly
 * the tree in `manifest`. Throws with everything needed to debug otherwise.
 */
export function expectGuestSaw(r: BootResult, dev: number, manifest: Manifest, what: string): void {
  const problems: string[] = [];
  if (r.timedOut) problems.push("the guest timed out");
  if (r.code !== 0) problems.push(`QEMU exited with ${r.code}: ${r.stderr.trim()}`);
  if (r.result !== "ok") problems.push(`guest result: ${r.result ?? "(no RESULT line: the guest crashed or hung)"}`);
  const end = r.lines.find((l) => l.startsWith(`END ${dev} `));
  if (end !== `END ${dev} 0`) problems.push(`report of device ${dev} did not complete: ${end ?? "(no END line)"}`);
  const seen = parseGuestReport(r.lines, dev);
  const diffs = compareManifests(manifest, seen);
  if (diffs.length) {
    problems.push(`${diffs.length} differences between the source tree and what the guest saw (${what}):`);
    problems.push(...diffs.slice(0, 60).map((d) => "  " + d));
    if (diffs.length > 60) problems.push(`  ... and ${diffs.length - 60} more`);
  }
  if (problems.length) {
    throw new GuestFailure(`${problems.join("\n")}\n--- guest console log ---\n${consoleSummary(r.lines)}\n---`);
  }
}

/**
 * The server's connection count once it reaches `atLeast` or `timeoutMs`
 * passes: some servers log a connection only when it ends, a moment after
 * the guest has gone.
 */
export async function connectionsSettled(server: ServerUnderTest, atLeast: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (server.connections() < atLeast && Date.now() < deadline) await sleep(50);
  await sleep(200); // and no more than that
  return server.connections();
}

/**
 * Export names the guest's `nbd-client -l` printed (EXPORT lines). nbd-client
 * prints "NAME: DESCRIPTION" when the server sends a description with the name
 * (NBD_REP_SERVER), just "NAME" otherwise.
 */
export function listedExports(lines: readonly string[]): string[] {
  return lines
    .filter((l) => l.startsWith("EXPORT "))
    .map((l) => l.slice("EXPORT ".length).replace(/: .*$/, ""))
    .sort();
}
