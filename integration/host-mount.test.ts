/**
 * Scenario 3: the host kernel mounts the export. nbdfuse exposes it as a
 * file, `mount -o loop,ro` mounts it with the host's ext4 driver, and the
 * mounted tree is compared with the source tree by diff -r (contents, link
 * targets), GNU stat (type, mode, owner, link count, device numbers, size) and
 * getfattr (every xattr namespace), plus the manifest (hard-link groups).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diffTrees, mountExport, statLines, xattrLines, type HostMount } from "./lib/hostmount.ts";
import { buildManifest, compareManifests } from "./lib/manifest.ts";
import { run, stopAllChildren } from "./lib/proc.ts";
import { integration, loadManifest, scenarioTimer, workDir } from "./lib/scenario.ts";
import type { ServerUnderTest } from "./lib/server.ts";
import { makeServer } from "./lib/sut.ts";

const ctx = integration();
let server: ServerUnderTest;
let mount: HostMount | undefined;
let stopTimer: (() => void) | undefined;

beforeAll(async () => {
  stopTimer = scenarioTimer("3: host nbdfuse + loop mount + diff/stat/getfattr");
  const dir = workDir("host-mount");
  server = makeServer(ctx.kind, dir);
  await server.start([ctx.base.export]);
  mount = await mountExport(`nbd://127.0.0.1:${server.port}/${ctx.base.export.name}`, dir);
});

afterAll(async () => {
  await mount?.unmount();
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

describe(`host loop mount through nbdfuse against ${ctx.kind}`, () => {
  it("e2fsck -fn over NBD finds a clean filesystem", async () => {
    const r = await run("e2fsck", ["-fn", mount!.image], { check: false });
    expect(r.stderr + r.stdout).not.toMatch(/ERROR|corrupt|Fix\?/i);
    expect(r.code).toBe(0);
  });

  it("is mounted read-only by the kernel's ext4 driver", async () => {
    const r = await run("findmnt", ["-n", "-o", "FSTYPE,OPTIONS", mount!.mountpoint]);
    expect(r.stdout).toMatch(/^ext4\s+ro,/);
  });

  it("diff -r finds no difference in contents or link targets", async () => {
    expect(await diffTrees(ctx.base.tree, mount!.mountpoint)).toEqual([]);
  });

  it("stat agrees on every object: type, mode, owner, link count, device numbers, size", async () => {
    const [want, got] = await Promise.all([statLines(ctx.base.tree), statLines(mount!.mountpoint)]);
    expect(got.length).toBe(ctx.base.entries);
    expect(got).toEqual(want);
  });

  it("getfattr agrees on every extended attribute, user., trusted. and security. alike", async () => {
    const [want, got] = await Promise.all([xattrLines(ctx.base.tree), xattrLines(mount!.mountpoint)]);
    expect(want.some((l) => /: security\.capability=0x/.test(l))).toBe(true);
    expect(want.some((l) => /: trusted\./.test(l))).toBe(true);
    expect(got).toEqual(want);
  });

  it("the manifest (sha256, hard-link groups) matches", () => {
    expect(compareManifests(loadManifest(ctx.base.manifest), buildManifest(mount!.mountpoint))).toEqual([]);
  });
});
