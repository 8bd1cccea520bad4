/**
 * Scenario: the guest kernel's NBD client over TLS. The server under test
 * requires TLS and client certificates (`--tls require --tls-verify-peer`;
 * nbdkit: `--tls=require --tls-verify-peer`); certificates are made here with
 * certtool and shipped in the guest's initramfs (an extra archive appended to
 * it). Debian's nbd-client 3.24 is built with GnuTLS: with -cacertfile,
 * -certfile and -keyfile it sends NBD_OPT_STARTTLS, does the handshake and
 * forks a proxy that relays between the kernel's socket and the TLS session.
 * The guest lists the exports and mounts the export over TLS; what it sees
 * must equal the manifest. A second boot without certificates must be refused.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePki, type Pki } from "../test/helpers/pki.ts";
import { withExtraFiles, type GuestAssets } from "./lib/guest-assets.ts";
import { run, stopAllChildren } from "./lib/proc.ts";
import { connectionsSettled, expectGuestSaw, integration, listedExports, loadManifest, runGuest, scenarioTimer, workDir } from "./lib/scenario.ts";
import type { ServerUnderTest } from "./lib/server.ts";
import { makeServer } from "./lib/sut.ts";

const ctx = integration();
let server: ServerUnderTest;
let dir: string;
let pki: Pki;
let guest: GuestAssets;
let stopTimer: (() => void) | undefined;
let exportSize: number;

/** Where the guest finds its credentials. */
const GUEST_TLS = "/etc/nbd-tls";

beforeAll(async () => {
  stopTimer = scenarioTimer("TLS: guest kernel NBD client over TLS (3 boots)");
  dir = workDir("tls");
  pki = makePki(join(dir, "pki"));
  guest = withExtraFiles(
    ctx.assets,
    [
      { kind: "file", path: `${GUEST_TLS}/ca-cert.pem`, data: readFileSync(pki.ca) },
      { kind: "file", path: `${GUEST_TLS}/client-cert.pem`, data: readFileSync(pki.clientCert) },
      { kind: "file", path: `${GUEST_TLS}/client-key.pem`, data: readFileSync(pki.clientKey), mode: 0o600 },
      { kind: "file", path: "/etc/nbd-tls-ca-only/ca-cert.pem", data: readFileSync(pki.ca) },
    ],
    dir,
  );
  server = makeServer(ctx.kind, dir, { dir: pki.dir, verifyPeer: true });
  await server.start([ctx.base.export]);
  // The size as libnbd sees it over TLS with the same client certificate: the oracle for the guest's view.
  const info = await run("nbdinfo", ["--size", `nbds://127.0.0.1:${server.port}/${ctx.base.export.name}?tls-certificates=${pki.clientDirs.good}`]);
  exportSize = Number(info.stdout.trim());
  await connectionsSettled(server, 1);
});

afterAll(async () => {
  await server?.stop();
  await stopAllChildren();
  stopTimer?.();
});

describe(`guest nbd-client over TLS against ${ctx.kind} (--tls require, client certificates)`, () => {
  it("lists and mounts the export over TLS; every file, mode, owner and link matches the source", async () => {
    expect(exportSize).toBeGreaterThan(0);
    const before = server.connections();
    const r = await runGuest("nbd over TLS", dir, {
      assets: guest,
      params: { mode: "nbd", exports: ctx.base.export.name, tlsdir: GUEST_TLS, list: 1, bs: 4096 },
      guestfwdPort: server.port,
    });
    expectGuestSaw(r, 0, loadManifest(ctx.base.manifest), "nbd-client over TLS");
    expect(r.lines).toContain(`LAB mounted /dev/nbd0 1 ${exportSize / 512}`);
    expect(listedExports(r.lines)).toEqual([ctx.base.export.name]);
    // The list connection and the mount's connection.
    expect((await connectionsSettled(server, before + 1)) - before).toBeGreaterThanOrEqual(1);
    if (ctx.kind !== "nbdkit") {
      // puzzlefs serve logs how each connection was protected and who the client was.
      expect(server.log()).toMatch(new RegExp(`conn#\\d+ \\S+ export "${ctx.base.export.name}": \\d+ requests, .*; TLSv1\\.3 TLS_\\w+ as CN=alice`));
    }
  });

  it("without a client certificate the guest's nbd-client is refused", async () => {
    const r = await runGuest("nbd over TLS without a client certificate", dir, {
      assets: guest,
      params: { mode: "nbd", exports: ctx.base.export.name, tlsdir: "/etc/nbd-tls-ca-only" },
      guestfwdPort: server.port,
    });
    expect(r.result).toMatch(/^fail nbd-client \/dev\/nbd0 -N /);
    expect(r.lines.some((l) => l.startsWith("LAB mounted"))).toBe(false);
  });

  it("a plain-text nbd-client is refused by the server that requires TLS", async () => {
    const r = await runGuest("nbd without TLS", dir, {
      params: { mode: "nbd", exports: ctx.base.export.name },
      guestfwdPort: server.port,
    });
    expect(r.result).toMatch(/^fail nbd-client \/dev\/nbd0 -N /);
    expect(r.lines.some((l) => l.startsWith("LAB mounted"))).toBe(false);
  });
});
