/**
 * contrib/: the systemd unit runs a `puzzlefs serve` command line the real
 * CLI accepts (commander + validate), and `systemd-analyze verify` (the
 * oracle for unit files) finds nothing wrong with it; the nbdtab example
 * points nbd-client at the address and port that unit listens on, with
 * options nbd-client knows. (The integration suite's guest also attaches
 * through that very nbdtab line.)
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseCommandLine, shellCommands, validateServe } from "../helpers/cli-parse.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const UNIT = readFileSync(join(ROOT, "contrib/puzzlefs-serve.service"), "utf8");
const NBDTAB = readFileSync(join(ROOT, "contrib/nbdtab"), "utf8");
const tmp = mkdtempSync(join(tmpdir(), "pfs-contrib-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const unitValue = (key: string): string[] =>
  UNIT.split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

const execStart = shellCommands(unitValue("ExecStart")[0]!)[0]!;

async function served() {
  const p = await parseCommandLine(execStart.slice(1));
  return { p, o: validateServe(p) };
}

describe("contrib/puzzlefs-serve.service", () => {
  it("ExecStart is `puzzlefs serve DIR --listen HOST:PORT`, accepted by the real CLI", async () => {
    // A bare name: systemd (>= 239) searches /usr/local/bin and /usr/bin, where `npm install -g` puts it.
    expect(execStart[0]).toBe("puzzlefs");
    const { p, o } = await served();
    expect(p.command).toBe("serve");
    expect(o.ociDir).toBe("/var/lib/puzzlefs/images");
    expect(o.listen).toEqual({ host: "127.0.0.1", port: 10809 });
  });

  it("can read the images it serves (the directory is under ReadOnlyPaths, not hidden by ProtectSystem)", async () => {
    const { o } = await served();
    expect(unitValue("ReadOnlyPaths").some((p) => o.ociDir!.startsWith(`${p}/`))).toBe(true);
  });

  it("systemd-analyze verify finds nothing wrong (with the binary path pointed at a stub)", () => {
    const stub = join(tmp, "puzzlefs");
    writeFileSync(stub, "#!/bin/sh\n");
    chmodSync(stub, 0o755);
    const unit = join(tmp, "puzzlefs-serve.service");
    writeFileSync(unit, UNIT.replace("ExecStart=puzzlefs ", `ExecStart=${stub} `));
    const r = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    expect(r.stderr.trim()).toBe("");
    expect(r.status).toBe(0);
    // And the check can fail: an unknown key is reported.
    writeFileSync(unit, UNIT.replace("[Service]\n", "[Service]\nNoSuchSetting=1\n").replace("ExecStart=puzzlefs ", `ExecStart=${stub} `));
    expect(spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" }).stderr).toMatch(/NoSuchSetting/);
  });
});

describe("contrib/nbdtab", () => {
  const entries = NBDTAB.split("\n")
    .filter((l) => !/^\s*(#|$)/.test(l))
    .map((l) => l.trim().split(/\s+/));

  it("one entry: device, host, export, options, pointing at the unit's address and port", async () => {
    const { o } = await served();
    expect(entries.length).toBe(1);
    const [dev, host, name, options] = entries[0]!;
    expect(dev).toMatch(/^nbd\d+$/);
    expect(host).toBe((o.listen as { host: string }).host);
    expect(name).toMatch(/^[\w.-]+$/);
    const opts = new Map(options!.split(",").map((kv) => kv.split("=") as [string, string]));
    expect(opts.get("port")).toBe(String((o.listen as { port: number }).port));
    // The options nbdtab(5) of nbd-client 3.24 (Debian 12) lists; bs must be one the kernel takes (512..4096, a power of two).
    const known = ["bs", "cacertfile", "certfile", "conns", "keyfile", "no_optgo", "port", "timeout", "persist", "swap", "sdp", "tlshostname", "unix"];
    for (const k of opts.keys()) expect(known).toContain(k);
    expect([512, 1024, 2048, 4096]).toContain(Number(opts.get("bs")));
  });
});
