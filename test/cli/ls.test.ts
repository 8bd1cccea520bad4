import { afterAll, describe, expect, it } from "vitest";
import { modeString } from "../../src/cli/ls.ts";
import { fixtureDir, tmpDirs } from "../helpers/oci-fixtures.ts";
import { runCli } from "../helpers/run-cli.ts";
import { I, rootfs, writeImage } from "../helpers/test-image.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const MIXED = `${fixtureDir("mixed-noop")}:mixed`;

describe("cli ls", () => {
  it("lists / by default, in image order", async () => {
    const r = await runCli(["ls", MIXED]);
    expect([r.code, r.stdout.toString()]).toEqual([0, "a.txt\nb\ndir\nlink\nz.txt\n"]);
  });

  it("-l shows mode (setuid/setgid), ino, uid, gid, size or device numbers, symlink target", async () => {
    const r = await runCli(["ls", MIXED, "-l"]);
    expect(r.stdout.toString().split("\n")).toEqual([
      "-rw-r--r--       2  1000  1000          6 a.txt",
      "-rw-r--r--       2  1000  1000          6 b",
      "drwxrwsr-x       4     0     0          0 dir",
      "lrwxrwxrwx       5     0     0          5 link -> a.txt",
      "-rw-r--r--       6     0     0          3 z.txt",
      "",
    ]);
    const d = await runCli(["ls", MIXED, "/dir", "-l"]);
    expect(d.stdout.toString()).toBe(
      [
        "-rwsr-xr-x       7     0     0     300000 big.bin",
        "-rw-------       8     0     0          0 empty",
        "prw-r--r--       9     0     0          0 fifo",
        "crw-rw-rw-      10     0     0       1, 3 null",
        "",
      ].join("\n"),
    );
  });

  it("-R walks subdirectories under headers; a file path lists just the file", async () => {
    const r = await runCli(["ls", MIXED, "-R"]);
    expect(r.stdout.toString()).toBe("/:\na.txt\nb\ndir\nlink\nz.txt\n\n/dir:\nbig.bin\nempty\nfifo\nnull\n");
    const f = await runCli(["ls", MIXED, "/dir/big.bin"]);
    expect(f.stdout.toString()).toBe("/dir/big.bin\n");
    const delta = await runCli(["ls", `${fixtureDir("sekien-delta-noop")}:test2`, "-R"]);
    expect(delta.stdout.toString()).toBe("/:\nSekienAkashita.jpg\nfoo\n\n/foo:\n");
  });

  it("prints names that are not UTF-8 with escapes", async () => {
    const dir = tmp.make();
    await writeImage(dir, "t", rootfs([[I.dir(1, [[Uint8Array.from([0x62, 0xff, 0x0a]), 2], ["ok", 3]]), I.plain(2, "fifo"), I.plain(3, "sock")]]));
    const r = await runCli(["ls", `${dir}:t`]);
    expect(r.stdout.toString()).toBe("b\\xff\\n\nok\n");
  });

  it("errors: a missing path is exit 1 with a hint, a bad ref exit 1, a missing image exit 2", async () => {
    const r = await runCli(["ls", MIXED, "/nope"]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/^puzzlefs: path "\/nope" in the image: no such file or directory\n  hint: /)]);
    const through = await runCli(["ls", MIXED, "/a.txt/x"]);
    expect([through.code, through.stderr.split("\n")[0]]).toEqual([1, 'puzzlefs: path "/a.txt/x": /a.txt is not a directory']);
    expect((await runCli(["ls", fixtureDir("mixed-noop")])).code).toBe(1);
    expect((await runCli(["ls", "/nonexistent:tag"])).code).toBe(2);
    expect((await runCli(["ls", MIXED, "-x"])).code).toBe(1);
  });

  it("--help and --digest", async () => {
    const h = await runCli(["ls", "--help"]);
    expect([h.code, h.stdout.toString()]).toEqual([0, expect.stringContaining("Usage: puzzlefs ls [options] <OCI_DIR:TAG> [PATH]")]);
    const pinned = await runCli(["ls", `${fixtureDir("sekien-noop")}:test`, "--digest", "551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d"]);
    expect([pinned.code, pinned.stdout.toString()]).toEqual([0, "SekienAkashita.jpg\n"]);
    expect((await runCli(["ls", `${fixtureDir("sekien-noop")}:test`, "--digest", "ab".repeat(32)])).code).toBe(2);
  });

  it("modeString renders special bits like ls", () => {
    expect(modeString("dir", 0o1777)).toBe("drwxrwxrwt");
    expect(modeString("file", 0o6644)).toBe("-rwSr-Sr--");
    expect(modeString("sock", 0o1000)).toBe("s--------T");
  });
});
