import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachInstructions, connectionLine, parseListen, parseRaw, parseSize, requestErrorLine, validate } from "../../src/cli/serve.ts";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { pattern } from "../nbd/helpers/memdev.ts";
import { RawClient, run } from "../nbd/helpers/net.ts";
import { OPT, REP, goData, option } from "../nbd/helpers/proto.ts";

const CLI = join(import.meta.dirname, "helpers", "cli.ts");
const ROOT = join(import.meta.dirname, "..", "..");
const a = pattern(1 << 20, 21);
const b = pattern(3 << 20, 22);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pfs-serve-"));
  await writeFile(join(dir, "a.img"), a);
  await writeFile(join(dir, "b.img"), b);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const defaults = { cacheSize: "256M", maxConnections: "256", handshakeTimeout: "10", maxRequests: "64", maxInflight: "64M" };

describe("option parsing", () => {
  it("parses sizes, listen addresses and --raw", () => {
    expect(parseSize("256M", "x")).toBe(256 << 20);
    expect(parseSize("4096", "x")).toBe(4096);
    expect(parseSize("1G", "x")).toBe(1 << 30);
    expect(parseSize("64KiB", "x")).toBe(65536);
    expect(() => parseSize("lots", "--cache-size")).toThrow(/--cache-size: "lots" is not a size/);
    expect(parseListen("127.0.0.1:10809")).toEqual({ host: "127.0.0.1", port: 10809 });
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 });
    expect(parseListen("0.0.0.0:10809")).toEqual({ host: "0.0.0.0", port: 10809 });
    for (const bad of ["10809", ":10809", "host", "h:99999", "::1:5"]) expect(() => parseListen(bad), bad).toThrow(/is not HOST:PORT/);
    expect(parseRaw("disk=/x/y=z.img")).toEqual({ name: "disk", file: "/x/y=z.img" });
    for (const bad of ["disk", "=f", "disk="]) expect(() => parseRaw(bad), bad).toThrow(/is not NAME=FILE/);
  });

  it("defaults to loopback port 10809 and validates every option before serving", () => {
    const o = validate(undefined, { ...defaults, raw: ["d=f"] });
    expect(o.listen).toEqual({ host: "127.0.0.1", port: 10809 });
    expect(o).toMatchObject({ cacheSize: 256 << 20, maxConnections: 256, handshakeTimeoutMs: 10_000, maxRequests: 64, maxInflight: 64 << 20 });
    expect(validate(undefined, { ...defaults, raw: ["d=f"], unix: "/s" }).listen).toEqual({ path: "/s" });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{}, /nothing to serve/],
      [{ raw: ["d=f"], listen: "127.0.0.1:1", unix: "/s" }, /mutually exclusive/],
      [{ raw: ["d=f", "d=g"] }, /given twice/],
      [{ raw: ["d=f"], tag: ["t"] }, /--tag needs an OCI image directory/],
      [{ raw: ["d=f"], maxConnections: "0" }, /--max-connections/],
      [{ raw: ["d=f"], handshakeTimeout: "-1" }, /--handshake-timeout/],
    ];
    for (const [flags, re] of bad) {
      expect(() => validate(undefined, { ...defaults, ...flags }), String(re)).toThrow(re);
      try {
        validate(undefined, { ...defaults, ...flags });
      } catch (e) {
        expect((e as { code: string }).code).toBe(ErrorCode.USAGE);
      }
    }
  });

  it("prints nbd-client and QEMU command lines for TCP and unix sockets", () => {
    const info = new Map([["my disk", { size: 4096, description: "raw image x" }]]);
    expect(attachInstructions({ host: "127.0.0.1", port: 10809 }, info, "my disk")).toEqual([
      'puzzlefs serve: listening on 127.0.0.1:10809; 1 export, default "my disk"',
      'export "my disk": 4096 bytes, raw image x',
      "  uri:        nbd://127.0.0.1:10809/my%20disk",
      "  nbd-client: nbd-client 127.0.0.1 10809 /dev/nbd0 -N 'my disk' -R -b 4096",
      "  qemu:       qemu-system-x86_64 ... -drive file=nbd://127.0.0.1:10809/my%20disk,format=raw,if=virtio,readonly=on",
    ]);
    const unix = attachInstructions({ path: "/run/p.sock" }, new Map([["d", { size: 1, description: "x" }]]), "d");
    expect(unix).toContain("  uri:        nbd+unix:///d?socket=/run/p.sock");
    expect(unix).toContain("  nbd-client: nbd-client -unix /run/p.sock /dev/nbd0 -N d -R -b 4096");
    expect(attachInstructions({ host: "::1", port: 5 }, info, "my disk")[2]).toBe("  uri:        nbd://[::1]:5/my%20disk");
  });
});

describe("log lines", () => {
  it("one line per connection: client, export, requests, bytes, errors, how it ended", () => {
    const line = connectionLine({ id: 3, client: "127.0.0.1:5000", export: "disk", startedAt: Date.now() - 1500, requests: 12, bytes: 3 << 20, errors: 1, reason: "NBD_CMD_DISC", hard: false });
    expect(line).toMatch(/^puzzlefs serve: conn#3 127\.0\.0\.1:5000 export "disk": 12 requests, 3\.0 MiB read, 1 errors, 1\.[45]\d s, closed: NBD_CMD_DISC$/);
    const dropped = connectionLine({ id: 4, client: "unix", export: undefined, startedAt: Date.now(), requests: 0, bytes: 0, errors: 1, reason: "bad option magic 0x1", hard: true });
    expect(dropped).toMatch(/conn#4 unix no export: 0 requests, 0 B read, 1 errors, .* dropped: bad option magic 0x1$/);
  });

  it("one line per failed request, naming the command, range, errno and cause", () => {
    const e = PfsError.digest("chunk 3 of blob sha256:ab", "ab", "cd");
    expect(requestErrorLine({ id: 2, client: "c", export: "img", type: 0, offset: 8192, length: 4096, errno: 5, error: e })).toBe(
      'puzzlefs serve: conn#2 export "img": NBD_CMD_READ @8192+4096 -> EIO: chunk 3 of blob sha256:ab: sha256 mismatch: expected ab, got cd',
    );
  });
});

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  waitOut(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

function startCli(args: string[]): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const p: Proc = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((res) => child.on("exit", (code) => res(code))),
    async waitOut(re, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        const m = p.stdout.match(re);
        if (m) return m;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no ${re} in stdout: ${p.stdout}\nstderr: ${p.stderr}`);
    },
  };
  child.stdout!.on("data", (d) => (p.stdout += d));
  child.stderr!.on("data", (d) => (p.stderr += d));
  return p;
}

async function stop(p: Proc, sig: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (p.child.exitCode === null) p.child.kill(sig);
  return p.exited;
}

describe("puzzlefs serve --raw (spawned)", () => {
  it("serves raw files on an ephemeral port, prints how to attach, logs each connection, stops on SIGTERM", async () => {
    const p = startCli(["serve", "--raw", `a=${join(dir, "a.img")}`, "--raw", `b=${join(dir, "b.img")}`, "--listen", "127.0.0.1:0", "--default-export", "b"]);
    try {
      const m = await p.waitOut(/uri: +nbd:\/\/127\.0\.0\.1:(\d+)\/b\n/);
      const port = m[1]!;
      expect(p.stdout).toMatch(/listening on 127\.0\.0\.1:\d+; 2 exports, default "b"/);
      expect(p.stdout).toContain(`nbd-client: nbd-client 127.0.0.1 ${port} /dev/nbd0 -N a -R -b 4096`);
      expect(p.stdout).toContain(`qemu:       qemu-system-x86_64 ... -drive file=nbd://127.0.0.1:${port}/a,format=raw,if=virtio,readonly=on`);
      const list = await run("nbdinfo", ["--list", "--json", `nbd://127.0.0.1:${port}`]);
      expect(JSON.parse(list.stdout).exports.map((e: { "export-name": string }) => e["export-name"])).toEqual(["a", "b"]);
      // the empty name is the default export
      const out = join(dir, "default.img");
      const cp = await run("nbdcopy", [`nbd://127.0.0.1:${port}`, out]);
      expect(cp.code, cp.stderr).toBe(0);
      expect((await readFile(out)).equals(b)).toBe(true);
      const cmp = await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", `nbd://127.0.0.1:${port}/a`, join(dir, "a.img")]);
      expect(cmp.stdout).toContain("Images are identical.");
      // qemu-img exits once it has sent NBD_CMD_DISC; the server logs the connection when it has closed it.
      for (let i = 0; i < 400 && !/export "a": .*closed: NBD_CMD_DISC/.test(p.stderr); i++) await new Promise((r) => setTimeout(r, 25));
    } finally {
      expect(await stop(p)).toBe(0);
    }
    expect(p.stderr).toMatch(/conn#\d+ 127\.0\.0\.1:\d+ export "b": \d+ requests, 3\.0 MiB read, 0 errors, [\d.]+ s, closed: NBD_CMD_DISC/);
    expect(p.stderr).toMatch(/SIGTERM: finishing replies on 0 connection\(s\), then exiting/);
    expect(p.stderr).toMatch(/puzzlefs serve: stopped\n$/);
  });

  it("on SIGINT closes a connected client cleanly and exits 0", async () => {
    const sock = join(dir, "s.sock");
    // a stale socket file left by a dead server is replaced
    const py = await run("/usr/bin/python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", sock]);
    expect(py.code, py.stderr).toBe(0);
    const p = startCli(["serve", "--raw", `a=${join(dir, "a.img")}`, "--unix", sock]);
    try {
      await p.waitOut(/uri: +nbd\+unix:\/\/\/a\?socket=/);
      const info = await run("nbdinfo", ["--size", `nbd+unix:///a?socket=${sock}`]);
      expect(info.stdout.trim()).toBe(String(a.length));
      const c = await RawClient.connect(sock);
      await c.handshake();
      c.send(option(OPT.GO, goData("a")));
      for (;;) if (((await c.reply()) as { type: number }).type === REP.ACK) break;
      p.child.kill("SIGINT");
      await c.waitClosed();
      expect(await p.exited).toBe(0);
    } finally {
      await stop(p);
    }
    expect(p.stderr).toMatch(/SIGINT: finishing replies on 1 connection\(s\)/);
    expect(p.stderr).toMatch(/conn#\d+ unix export "a": 0 requests, 0 B read, 0 errors, [\d.]+ s, closed: server shutdown/);
  });

  it("refuses connections beyond --max-connections and says so on stderr", async () => {
    const p = startCli(["serve", "--raw", `a=${join(dir, "a.img")}`, "--listen", "127.0.0.1:0", "--max-connections", "1"]);
    try {
      const port = Number((await p.waitOut(/uri: +nbd:\/\/127\.0\.0\.1:(\d+)\//))[1]);
      const first = await RawClient.connect(port);
      await first.raw(18);
      const second = await RawClient.connect(port);
      await second.waitClosed();
      expect(second.reader.pending).toBe(0);
      first.close();
    } finally {
      expect(await stop(p)).toBe(0);
    }
    expect(p.stderr).toMatch(/refused a connection from 127\.0\.0\.1: --max-connections 1 reached/);
  });

  it("exits 1 on usage errors and 3 when the port is taken or the file is missing", async () => {
    const usage = startCli(["serve"]);
    expect(await usage.exited).toBe(1);
    expect(usage.stderr).toContain("puzzlefs: nothing to serve");
    const noImage = startCli(["serve", dir]);
    expect(await noImage.exited).toBe(2);
    expect(noImage.stderr).toMatch(/oci-layout: not found\n  hint: .* is not an OCI image layout/);
    const missing = startCli(["serve", "--raw", `x=${join(dir, "nope.img")}`, "--listen", "127.0.0.1:0"]);
    expect(await missing.exited).toBe(3);
    expect(missing.stderr).toMatch(/nope\.img: ENOENT/);
    const badDefault = startCli(["serve", "--raw", `x=${join(dir, "a.img")}`, "--default-export", "y", "--listen", "127.0.0.1:0"]);
    expect(await badDefault.exited).toBe(1);
    expect(badDefault.stderr).toMatch(/--default-export: "y" is not an export/);

    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = startCli(["serve", "--raw", `x=${join(dir, "a.img")}`, "--listen", `127.0.0.1:${port}`]);
      expect(await busy.exited).toBe(3);
      expect(busy.stderr).toMatch(/EADDRINUSE[^\n]*\n  hint: another server is using that address/);
    } finally {
      taken.close();
    }
  });
});
