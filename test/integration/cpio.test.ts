import { execFileSync } from "node:child_process";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeNewc } from "../../integration/lib/cpio.ts";

// Oracle: GNU cpio reads our newc archives (the format the kernel unpacks).
const tmp = mkdtempSync(join(tmpdir(), "cpio-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const archive = writeNewc([
  { kind: "file", path: "init", data: Buffer.from("#!/bin/sh\necho hi\n"), mode: 0o755 },
  { kind: "file", path: "lib/x86_64-linux-gnu/libfoo.so.1", data: Buffer.alloc(5001, 7) },
  { kind: "file", path: "etc/empty", data: new Uint8Array(0) },
  { kind: "symlink", path: "bin/sh", target: "busybox" },
  { kind: "chr", path: "dev/console", major: 5, minor: 1 },
  { kind: "dir", path: "proc", mode: 0o555 },
]);

describe("writeNewc", () => {
  it("lists every member, parents first, as GNU cpio -t sees it", () => {
    const list = execFileSync("cpio", ["-t", "--quiet"], { input: archive }).toString().trim().split("\n");
    expect(list).toEqual([
      "bin",
      "bin/sh",
      "dev",
      "dev/console",
      "etc",
      "etc/empty",
      "init",
      "lib",
      "lib/x86_64-linux-gnu",
      "lib/x86_64-linux-gnu/libfoo.so.1",
      "proc",
    ]);
  });

  it("extracts to the same contents, modes, link targets and device numbers", () => {
    const dest = join(tmp, "x");
    execFileSync("sh", ["-c", `mkdir -p "$1" && cd "$1" && cpio -i -d --quiet --no-absolute-filenames`, "sh", dest], {
      input: archive,
    });
    expect(readFileSync(join(dest, "init"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(lstatSync(join(dest, "init")).mode & 0o7777).toBe(0o755);
    expect(readFileSync(join(dest, "lib/x86_64-linux-gnu/libfoo.so.1"))).toEqual(Buffer.alloc(5001, 7));
    expect(lstatSync(join(dest, "etc/empty")).size).toBe(0);
    expect(readlinkSync(join(dest, "bin/sh"))).toBe("busybox");
    expect(lstatSync(join(dest, "proc")).mode & 0o7777).toBe(0o555);
    if (process.getuid?.() === 0) {
      const st = lstatSync(join(dest, "dev/console"));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe((5 << 8) | 1);
    }
  });

  it("pads every header, name and body to 4 bytes and ends with TRAILER!!!", () => {
    expect(archive.length % 4).toBe(0);
    expect(archive.subarray(0, 6).toString()).toBe("070701");
    expect(archive.includes(Buffer.from("TRAILER!!!\0"))).toBe(true);
    // Deterministic: no times, owners or inode numbers from the host.
    expect(writeNewc([{ kind: "file", path: "a", data: Buffer.from("x") }])).toEqual(
      writeNewc([{ kind: "file", path: "a", data: Buffer.from("x") }]),
    );
  });
});
