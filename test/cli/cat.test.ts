import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, blobPath, fixtureDir, flipByte, sha256hex, tmpDirs } from "../helpers/oci-fixtures.ts";
import { runCli, spawnCli } from "../helpers/run-cli.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));

describe("cli cat", () => {
  it("writes a file byte for byte to a real stdout pipe (compressed image), exit 0", () => {
    const r = spawnCli(["cat", `${fixtureDir("sekien-zstd")}:test`, "/SekienAkashita.jpg"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.equals(JPG)).toBe(true);
  });

  it("cats files of mixed-noop, hard link included, with --digest", async () => {
    const img = `${fixtureDir("mixed-noop")}:mixed`;
    expect((await runCli(["cat", img, "/b"])).stdout.toString()).toBe("hello\n");
    // The pin is the manifest blob's fs-verity digest, as `fsverity digest` computes it.
    const manifest = blobPath(fixtureDir("mixed-noop"), "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052");
    const pin = execFileSync("fsverity", ["digest", "--hash-alg=sha256", "--block-size=4096", manifest], { encoding: "utf8" }).split(" ")[0]!.replace("sha256:", "");
    const big = await runCli(["cat", img, "dir/big.bin", "--digest", pin]);
    expect([big.code, big.stdout.length]).toEqual([0, 300000]);
    expect(big.stdout.subarray(0, 4).toString("hex")).toBe(sha256hex(Buffer.concat([Buffer.from("puzzlefs-fixture"), Buffer.alloc(4)])).slice(0, 8));
    expect((await runCli(["cat", img, "/dir/empty"])).stdout.length).toBe(0);
  });

  it("refuses directories and symlinks (exit 1) and says what to do", async () => {
    const img = `${fixtureDir("mixed-noop")}:mixed`;
    const d = await runCli(["cat", img, "/dir"]);
    expect([d.code, d.stderr]).toEqual([1, "puzzlefs: /dir is a directory, not a regular file\n  hint: use `puzzlefs ls` to list it\n"]);
    expect((await runCli(["cat", img, "/link"])).stderr).toBe("puzzlefs: /link is a symbolic link, not a regular file\n");
    expect((await runCli(["cat", img])).code).toBe(1);
    const h = await runCli(["cat", "--help"]);
    expect([h.code, h.stdout.toString()]).toEqual([0, expect.stringContaining("Usage: puzzlefs cat [options] <OCI_DIR:TAG> <PATH>")]);
  });

  it("stops quietly when the reader of stdout goes away (cat | head)", () => {
    const entry = join(import.meta.dirname, "../helpers/cli-entry.ts");
    const script = `node --import tsx ${entry} cat ${fixtureDir("mixed-noop")}:mixed /dir/big.bin 2>/tmp/pfs-epipe-$$ | head -c 10 >/dev/null; echo "$\{PIPESTATUS[0]}"; cat /tmp/pfs-epipe-$$; rm -f /tmp/pfs-epipe-$$`;
    expect(execFileSync("bash", ["-c", script], { encoding: "utf8" })).toBe("0\n");
  });

  it("a corrupt chunk is exit 2 naming the blob", () => {
    const dir = tmp.copyFixture("sekien-noop");
    const hex = sha256hex(JPG);
    flipByte(blobPath(dir, hex), 7);
    const r = spawnCli(["cat", `${dir}:test`, "/SekienAkashita.jpg"]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(new RegExp(`^puzzlefs: chunk blob sha256:${hex}: sha256 mismatch: expected ${hex}, got [0-9a-f]{64}$`));
    expect(r.stdout.length).toBe(0);
  });
});
