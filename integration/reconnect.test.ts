/**
 * Scenario 4: the server dies and comes back while the guest has the
 * filesystem mounted. The guest reads everything once, says READY; the host
 * kills the server (SIGKILL, a crash), keeps it down for DOWN_MS and starts it
 * again on the same port. Meanwhile the guest drops its caches and reads
 * every file again: those reads wait for the reconnect and must see the same
 * bytes (full manifest check), and the restarted server must have been used.
 * The synthesized image must be deterministic across restarts: the whole
 * export, read with nbdcopy before the kill and after the restart, has the
 * same sha256 (else a reconnected client would read a different disk).
 *
 * The client that reconnects is QEMU's NBD block driver (`reconnect-delay`).
 * The kernel client cannot with Debian 12's pieces (checked here): nbd-client
 * 3.24 ignores -persist in netlink mode (persist for netlink came upstream
 * after 3.24), and with -L (ioctl) kernel 6.1's NBD_DO_IT returns 0 after a
 * socket error, so nbd-client exits instead of reconnecting; reads get EIO.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, stopAllChildren } from "./lib/proc.ts";
import {
  connectionsSettled,
  exportDigest,
  expectGuestSaw,
  integration,
  loadManifest,
  runGuest,
  scenarioTimer,
  workDir,
} from "./lib/scenario.ts";
import type { ServerUnderTest } from "./lib/server.ts";
import { makeServer } from "./lib/sut.ts";

const ctx = integration();
const DOWN_MS = 3000;
let server: ServerUnderTest;
let dir: string;
let stopTimer: (() => void) | undefined;
let before: { sha256: string; bytes: number };

beforeAll(async () => {
  stopTimer = scenarioTimer("4: reconnect after a server kill (1 boot)");
  dir = workDir("reconnect");
  server = makeServer(ctx.kind, dir);
  await server.start([ctx.base.export]);
  before = await exportDigest(server.port, ctx.base.export.name);
});

afterAll(async () => {
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

describe(`server restart under a mounted filesystem (${ctx.kind})`, () => {
  it("QEMU reconnects after the server is killed and restarted; reads continue and see the same bytes", async () => {
    const events: string[] = [];
    let restarted: Promise<void> | undefined;
    let beforeRestart = 0;
    const r = await runGuest("reconnect (QEMU reconnect-delay)", dir, {
      params: { mode: "disk", disks: 1, scenario: "reconnect", pause: 1 },
      disks: [{ port: server.port, export: ctx.base.export.name, reconnectDelay: 120 }],
      onLine: async (line) => {
        if (line !== "READY" || restarted) return;
        await server.stop({ kill: true });
        events.push("killed");
        restarted = sleep(DOWN_MS).then(async () => {
          beforeRestart = server.connections();
          await server.start([ctx.base.export]);
          events.push("restarted");
        });
      },
    });
    await restarted;
    expect(events).toEqual(["killed", "restarted"]);
    expectGuestSaw(r, 0, loadManifest(ctx.base.manifest), "after a server restart");
    expect(r.lines).toContain("LAB caches dropped");
    // The reads after the restart went to the new server process, over one new connection.
    expect((await connectionsSettled(server, beforeRestart + 1)) - beforeRestart).toBe(1);
  });

  it("a server killed (-9) and started again serves the same disk, byte for byte (nbdcopy sha256)", async () => {
    await server.stop({ kill: true });
    await server.start([ctx.base.export]);
    const after = await exportDigest(server.port, ctx.base.export.name);
    expect(before.bytes).toBeGreaterThan(64 << 20);
    expect(after).toEqual(before);
  });
});
