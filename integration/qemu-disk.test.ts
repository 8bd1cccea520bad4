/**
 * Scenario 2: QEMU's own NBD client. The export is attached to the guest as a
 * virtio disk with the line `puzzlefs serve` prints and the README shows
 * (`-drive file=nbd://127.0.0.1:PORT/NAME,format=raw,if=virtio,readonly=on`);
 * the guest mounts /dev/vda with the kernel's ext4 driver (`-t ext4 -o ro`)
 * and reports every object, which must equal the manifest of the source
 * tree. (The -blockdev form is scenario 4's.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, stopAllChildren } from "./lib/proc.ts";
import { expectGuestSaw, integration, loadManifest, runGuest, scenarioTimer, workDir } from "./lib/scenario.ts";
import type { ServerUnderTest } from "./lib/server.ts";
import { makeServer } from "./lib/sut.ts";

const ctx = integration();
let server: ServerUnderTest;
let dir: string;
let stopTimer: (() => void) | undefined;

beforeAll(async () => {
  stopTimer = scenarioTimer("2: QEMU NBD disk (1 boot)");
  dir = workDir("qemu-disk");
  server = makeServer(ctx.kind, dir);
  await server.start([ctx.base.export]);
});

afterAll(async () => {
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

describe(`QEMU NBD block driver against ${ctx.kind}`, () => {
  it("boots with the export as a read-only virtio disk; every file, mode, owner and link matches", async () => {
    const uri = `nbd://127.0.0.1:${server.port}/${ctx.base.export.name}`;
    const size = Number((await run("qemu-img", ["info", "--output=json", uri])).stdout.match(/"virtual-size": (\d+)/)![1]);
    const r = await runGuest("qemu virtio disk", dir, {
      params: { mode: "disk", disks: 1 },
      disks: [{ port: server.port, export: ctx.base.export.name, form: "drive" }],
    });
    expectGuestSaw(r, 0, loadManifest(ctx.base.manifest), "QEMU NBD disk");
    // Read-only in the guest, and the size qemu-img sees (512-byte sectors).
    expect(r.lines).toContain(`LAB mounted /dev/vda 1 ${size / 512}`);
  });
});
