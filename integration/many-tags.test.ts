/**
 * Scenario 5: one server, two exports (the base tree and its delta, a later
 * version: changed, added and deleted files, a file turned directory, a
 * directory turned symlink, metadata-only changes). One guest lists the
 * exports, attaches both with the kernel client (/dev/nbd0, /dev/nbd1),
 * mounts both and must see the right tree on each.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DELTA_ADDED, DELTA_REMOVED, DELTA_RETYPED } from "./lib/corpus.ts";
import { compareManifests, parseGuestReport, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "./lib/manifest.ts";
import { run, stopAllChildren } from "./lib/proc.ts";
import {
  expectGuestSaw,
  integration,
  listedExports,
  loadManifest,
  runGuest,
  scenarioTimer,
  workDir,
} from "./lib/scenario.ts";
import type { ServerUnderTest } from "./lib/server.ts";
import { makeServer } from "./lib/sut.ts";

const ctx = integration();
let server: ServerUnderTest;
let dir: string;
let stopTimer: (() => void) | undefined;

beforeAll(async () => {
  stopTimer = scenarioTimer("5: many tags, two exports in one guest (1 boot)");
  dir = workDir("many-tags");
  server = makeServer(ctx.kind, dir);
  await server.start([ctx.base.export, ctx.delta.export]);
});

afterAll(async () => {
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

describe(`two exports from one server (${ctx.kind})`, () => {
  it("the trees differ, so mixing them up cannot pass", () => {
    const d = compareManifests(loadManifest(ctx.base.manifest), loadManifest(ctx.delta.manifest));
    expect(d.length).toBeGreaterThan(100);
  });

  it("nbdinfo --list shows both exports", async () => {
    const r = await run("nbdinfo", ["--list", "--json", `nbd://127.0.0.1:${server.port}`]);
    const names = (JSON.parse(r.stdout).exports as { "export-name": string }[]).map((e) => e["export-name"]).sort();
    expect(names).toEqual([ctx.base.export.name, ctx.delta.export.name].sort());
  });

  it("one guest mounts both with nbd-client and sees the base on nbd0 and the delta on nbd1", async () => {
    const r = await runGuest("two exports, one guest", dir, {
      params: { mode: "nbd", exports: `${ctx.base.export.name},${ctx.delta.export.name}`, list: 1 },
      guestfwdPort: server.port,
    });
    expect(listedExports(r.lines)).toEqual([ctx.base.export.name, ctx.delta.export.name].sort());
    expectGuestSaw(r, 0, loadManifest(ctx.base.manifest), `export ${ctx.base.export.name} on /dev/nbd0`);
    expectGuestSaw(r, 1, loadManifest(ctx.delta.manifest), `export ${ctx.delta.export.name} on /dev/nbd1`);
    // Spelled out (the manifest comparison implies it): what the delta deleted
    // is on nbd0 only, what it added on nbd1 only, and retyped paths differ.
    const [onBase, onDelta] = [parseGuestReport(r.lines, 0), parseGuestReport(r.lines, 1)];
    for (const p of DELTA_REMOVED) {
      expect(onBase.has(`./${p}`), `${p} on the base export`).toBe(true);
      expect(onDelta.has(`./${p}`), `${p} deleted in the delta, yet on its export`).toBe(false);
    }
    for (const p of DELTA_ADDED) {
      expect(onBase.has(`./${p}`), `${p} (added by the delta) on the base export`).toBe(false);
      expect(onDelta.has(`./${p}`), `${p} on the delta export`).toBe(true);
    }
    const type = (m: typeof onBase, p: string) => (m.get(`./${p}`)?.mode ?? 0) & S_IFMT;
    for (const [p, now] of Object.entries(DELTA_RETYPED)) {
      expect(type(onBase, p)).toBe(now === "dir" ? S_IFREG : S_IFDIR);
      expect(type(onDelta, p)).toBe(now === "dir" ? S_IFDIR : S_IFLNK);
    }
  });
});
