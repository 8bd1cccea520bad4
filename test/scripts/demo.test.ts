/**
 * scripts/demo.ts, run as `npm run demo` runs it (the package.json script,
 * with `--listen 127.0.0.1:0` so the test takes a free port): it builds the
 * sample tree, listens, and prints how to attach the export; a userspace NBD
 * client (nbdinfo, libnbd: an oracle we did not write) sees that export with
 * the size printed, read-only; SIGTERM stops it and its temporary directory
 * is gone.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
const exec = promisify(execFile);

let child: ChildProcess;
let stdout = "";
let stderr = "";
let exitCode: Promise<number | null>;

beforeAll(async () => {
  // The npm script's own command line, in its own process group so the whole tree can be stopped.
  child = spawn("sh", ["-c", `exec ${pkg.scripts.demo} --listen 127.0.0.1:0`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
  exitCode = new Promise((r) => child.once("exit", (c) => r(c)));
  // stdout and stderr are separate pipes: wait until both have said their piece.
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (/qemu: /.test(stdout) && /Ctrl-C stops the server/.test(stderr)) resolve();
    };
    child.stdout!.on("data", (b: Buffer) => {
      stdout += b.toString();
      check();
    });
    child.stderr!.on("data", (b: Buffer) => {
      stderr += b.toString();
      check();
    });
    void exitCode.then((c) => reject(new Error(`demo exited ${c} before listening:\n${stdout}\n${stderr}`)));
  });
}, 120_000);

afterAll(async () => {
  if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
});

describe("npm run demo", () => {
  it("builds sample/rootfs, listens on loopback and prints the attach commands for the export 'sample'", () => {
    expect(stdout).toMatch(/^puzzlefs image manifest digest: [0-9a-f]{64}$/m);
    const port = /^puzzlefs serve: listening on 127\.0\.0\.1:(\d+); 1 export, default "sample"$/m.exec(stdout)?.[1];
    expect(Number(port)).toBeGreaterThan(0);
    expect(stdout).toContain(`  uri:        nbd://127.0.0.1:${port}/sample\n`);
    expect(stdout).toContain(`  nbd-client: nbd-client 127.0.0.1 ${port} /dev/nbd0 -N sample -R -b 4096\n`);
    expect(stdout).toContain(`-drive file=nbd://127.0.0.1:${port}/sample,format=raw,if=virtio,readonly=on`);
    expect(stderr).toContain("mount -o ro /dev/nbd0 /mnt");
  });

  it("serves what it printed: nbdinfo sees the export, read-only, with the printed size", async () => {
    const port = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout)![1];
    const size = Number(/^export "sample": (\d+) bytes/m.exec(stdout)![1]);
    const r = await exec("nbdinfo", ["--json", "--no-content", `nbd://127.0.0.1:${port}/sample`]);
    const info = JSON.parse(r.stdout) as { exports: Array<{ "export-name": string; "export-size": number; is_read_only: boolean }> };
    expect(info.exports[0]).toMatchObject({ "export-name": "sample", "export-size": size, is_read_only: true });
  });

  it("stops on SIGTERM and removes its temporary image directory", async () => {
    const work = /^demo: building \S+ into (\S+):sample$/m.exec(stderr)![1]!;
    expect(existsSync(work)).toBe(true);
    process.kill(-child.pid!, "SIGTERM");
    expect(await exitCode).toBe(0);
    expect(stderr).toMatch(/puzzlefs serve: stopped/);
    expect(existsSync(join(work, ".."))).toBe(false);
  });
});
