import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { exportCommand, parseMtime } from "../../src/cli/export.ts";
import { fixtureDir } from "../helpers/oci-fixtures.ts";
import { runCli, spawnCli } from "../helpers/run-cli.ts";
import { TempDir, debugfs, e2fsck, sha256, withMount } from "../ext/helpers.ts";

describe("cli export", () => {
  const tmp = new TempDir();
  const saved = process.env.SOURCE_DATE_EPOCH;
  afterEach(() => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  });
  afterAll(() => tmp.cleanup());

  it("writes an e2fsck-clean, mountable image and prints its geometry", async () => {
    const out = tmp.file("mixed.img");
    const r = await runCli(["export", `${fixtureDir("mixed-noop")}:mixed`, out, "--mtime", "1600000000"]);
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout.toString();
    expect(text.split("\n")[0]).toBe(out);
    expect(text).toMatch(/^ext size: +\d+ bytes \(\d+ blocks of 4096, 1 group\)$/m);
    expect(text).toMatch(/^ext label: +mixed$/m);
    expect(statSync(out).size % 4096).toBe(0);
    expect(e2fsck(out).code).toBe(0);
    expect(debugfs(out, "stat /")).toMatch(/mtime: 0x5f5e1000/);
    expect(readdirSync(tmp.path).filter((n) => n.includes("partial"))).toEqual([]);
    await withMount(out, (d) => expect(readdirSync(d).length).toBeGreaterThan(1));
  });

  it("is byte-identical across runs, and takes SOURCE_DATE_EPOCH when --mtime is absent", async () => {
    process.env.SOURCE_DATE_EPOCH = "1600000000";
    const a = tmp.file("a.img");
    const b = tmp.file("b.img");
    expect((await runCli(["export", `${fixtureDir("sekien-zstd")}:test`, a])).code).toBe(0);
    delete process.env.SOURCE_DATE_EPOCH;
    expect((await runCli(["export", `${fixtureDir("sekien-zstd")}:test`, b, "--mtime", "1600000000"])).code).toBe(0);
    expect(sha256(readFileSync(a))).toBe(sha256(readFileSync(b)));
  });

  it("refuses to replace an existing file unless --force (exit 1), and leaves it alone", async () => {
    const out = tmp.file("exists.img");
    writeFileSync(out, "keep me");
    const r = await runCli(["export", `${fixtureDir("sekien-noop")}:test`, out]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/exists\.img: already exists\n  hint: .*--force/)]);
    expect(readFileSync(out, "utf8")).toBe("keep me");
    expect((await runCli(["export", `${fixtureDir("sekien-noop")}:test`, out, "--force"])).code).toBe(0);
    expect(e2fsck(out).code).toBe(0);
  });

  it("validates --mtime before doing anything", async () => {
    expect(() => parseMtime("soon")).toThrow(/not an integer/);
    expect(() => parseMtime("99999999999999")).toThrow(/outside what ext4 stores/);
    expect(parseMtime("-5")).toBe(-5);
    const out = tmp.file("never.img");
    const r = await runCli(["export", `${fixtureDir("sekien-noop")}:test`, out, "--mtime", "x"]);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  it("fails cleanly on a missing tag, a wrong --digest or a bad argument, writing nothing", async () => {
    const out = tmp.file("none.img");
    expect((await runCli(["export", `${fixtureDir("sekien-noop")}:nope`, out])).code).toBe(2);
    expect((await runCli(["export", `${fixtureDir("sekien-noop")}:test`, out, "--digest", "11".repeat(32)])).code).toBe(2);
    expect((await runCli(["export", fixtureDir("sekien-noop"), out])).code).toBe(1);
    expect((await runCli(["export", `${fixtureDir("sekien-noop")}:test`])).code).toBe(1);
    expect(existsSync(out)).toBe(false);
    const help = spawnCli(["export", "--help"]);
    expect([help.code, help.stdout.toString()]).toEqual([0, expect.stringContaining("Usage: puzzlefs export [options] <OCI_DIR:TAG> <OUT.img>")]);
  });

  it("draws a progress bar on request (the default on a terminal)", async () => {
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((c: unknown) => (err.push(String(c)), true));
    try {
      await exportCommand(`${fixtureDir("mixed-noop")}:mixed`, tmp.file("bar.img"), { progress: true, mtime: 0 });
    } finally {
      spy.mockRestore();
    }
    expect(err.join("")).toMatch(/exporting \[.*\] 100%/);
  });
});

describe("cli info --ext", () => {
  it("adds the planned ext geometry, as text and JSON", async () => {
    const r = await runCli(["info", `${fixtureDir("mixed-noop")}:mixed`, "--ext"]);
    expect(r.code).toBe(0);
    const t = r.stdout.toString();
    expect(t).toMatch(/^ext size: +\d+ bytes/m);
    expect(t).toMatch(/^ext features: +ext_attr dir_index filetype extent flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum read-only$/m);
    expect(t).toMatch(/^ext blocks: +.*file \d+/m);
    const j = JSON.parse((await runCli(["info", `${fixtureDir("mixed-noop")}:mixed`, "--ext", "--json"])).stdout.toString());
    expect(j.images[0].ext).toMatchObject({ blockSize: 4096, groups: 1, inodesUsed: 9 + 10, label: "mixed" });
    const plain = JSON.parse((await runCli(["info", `${fixtureDir("mixed-noop")}:mixed`, "--json"])).stdout.toString());
    expect(plain.images[0].ext).toBeUndefined();
  });
});

describe("cli serve OCI_DIR (the ext opener)", () => {
  it("serves every tag as its ext image: nbdcopy of each export equals `puzzlefs export` of the tag", async () => {
    const { spawn } = await import("node:child_process");
    const tmp = new TempDir();
    const savedEpoch = process.env.SOURCE_DATE_EPOCH;
    delete process.env.SOURCE_DATE_EPOCH;
    const env = { ...process.env };
    const child = spawn(process.execPath, ["--import", "tsx", "test/cli/helpers/cli.ts", "serve", fixtureDir("sekien-delta-noop"), "--listen", "127.0.0.1:0"], {
      cwd: new URL("../..", import.meta.url).pathname,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const exited = new Promise((r) => child.on("exit", r));
    try {
      const deadline = Date.now() + 30_000;
      while (!/uri: +nbd:\/\/127\.0\.0\.1:\d+\/test2/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 25));
      const port = /nbd:\/\/127\.0\.0\.1:(\d+)\//.exec(out)?.[1];
      expect(port, out).toBeDefined();
      expect(out).toMatch(/ext4 image of .*:test \(\d+ inodes, uuid [0-9a-f-]{36}\)/);
      for (const tag of ["test", "test2"]) {
        const copy = tmp.file(`${tag}.nbd.img`);
        const cp = spawnSync("nbdcopy", [`nbd://127.0.0.1:${port}/${tag}`, copy], { encoding: "utf8" });
        expect(cp.status, cp.stderr).toBe(0);
        const exp = tmp.file(`${tag}.export.img`);
        expect((await runCli(["export", `${fixtureDir("sekien-delta-noop")}:${tag}`, exp])).code).toBe(0);
        expect(sha256(readFileSync(copy))).toBe(sha256(readFileSync(exp)));
      }
    } finally {
      child.kill("SIGTERM");
      await exited;
      tmp.cleanup();
      if (savedEpoch !== undefined) process.env.SOURCE_DATE_EPOCH = savedEpoch;
    }
  });
});
