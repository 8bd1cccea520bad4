/**
 * Scenario 1: the guest kernel's own NBD client. A QEMU guest loads nbd.ko,
 * runs Debian's nbd-client against the server under test, mounts /dev/nbd0
 * read-only with the kernel's ext4 driver and reports every object; the report
 * must equal the manifest of the source tree. Repeated with -b 512/1024/4096
 * and with -C 2 (two connections).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, stopAllChildren } from "./lib/proc.ts";
import {
  connectionsSettled,
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
let exportSize: number;

beforeAll(async () => {
  stopTimer = scenarioTimer("1: guest kernel NBD client (nbd-client, 5 boots)");
  dir = workDir("guest-nbd");
  server = makeServer(ctx.kind, dir);
  await server.start([ctx.base.export]);
  // The size as a userspace client (libnbd) sees it: the oracle for the guest's view.
  const info = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${server.port}/${ctx.base.export.name}`]);
  exportSize = Number(info.stdout.trim());
  await connectionsSettled(server, 1); // nbdinfo's own connection, logged when it ends
});

afterAll(async () => {
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

/** The mount line the guest prints: device, read-only flag, size in 512-byte sectors. */
function mountLine(lines: string[], dev: string): string[] | undefined {
  return lines.find((l) => l.startsWith(`LAB mounted ${dev} `))?.split(" ").slice(3);
}

describe(`guest kernel NBD client against ${ctx.kind}`, () => {
  const variants: { label: string; params: Record<string, string | number>; conns: number }[] = [
    { label: "nbd-client defaults, after nbd-client -l", params: { list: 1 }, conns: 1 },
    { label: "nbd-client -b 512", params: { bs: 512 }, conns: 1 },
    { label: "nbd-client -b 1024", params: { bs: 1024 }, conns: 1 },
    // -b 4096 through the contrib/nbdtab example: `nbd-client nbd0` reads
    // host, export and bs=4096 from /etc/nbdtab; no -R, so read-only must
    // come from the server's flag alone.
    { label: "nbd-client -b 4096 (nbd-client nbd0 with contrib/nbdtab)", params: { nbdtab: 1 }, conns: 1 },
    { label: "nbd-client -C 2", params: { conns: 2 }, conns: 2 },
  ];
  for (const v of variants) {
    it(`${v.label}: mounts read-only and every file, mode, owner and link matches the source`, async () => {
      const before = server.connections();
      const r = await runGuest(`nbd ${v.label}`, dir, {
        params: { mode: "nbd", ...(v.params.nbdtab ? {} : { exports: ctx.base.export.name }), ...v.params },
        guestfwdPort: server.port,
      });
      expectGuestSaw(r, 0, loadManifest(ctx.base.manifest), `nbd-client ${v.label}`);
      // Read-only (the server's flag plus -R) and the export's full size.
      expect(mountLine(r.lines, "/dev/nbd0")).toEqual(["1", String(exportSize / 512)]);
      if (v.params.list) expect(listedExports(r.lines)).toEqual([ctx.base.export.name]);
      if (v.params.nbdtab) {
        expect(r.lines).toContain(`LAB nbdtab: nbd0      10.0.2.100  ${ctx.base.export.name}    port=10809,bs=4096`);
      }
      expect((await connectionsSettled(server, before + v.conns)) - before).toBe(v.conns);
    });
  }
});
