import { execFileSync } from "node:child_process";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hasNativeAddon, mknod, readXattrs, writeXattr } from "../../src/puzzlefs/native.ts";
import { removeTree, tempDir } from "../helpers/tree.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeTree));
const dir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
/** os.listxattr / os.getxattr via Python: the oracle for raw-byte paths. */
const pyXattrs = (p: Buffer): Array<[string, string]> =>
  JSON.parse(
    execFileSync("python3", [
      "-c",
      "import os,sys,json; p=bytes.fromhex(sys.argv[1]); print(json.dumps([[k, os.getxattr(p,k,follow_symlinks=False).hex()] for k in os.listxattr(p, follow_symlinks=False)]))",
      p.toString("hex"),
    ], { encoding: "utf8" }),
  );

describe("native helper", () => {
  it("is built and loaded (a C compiler and Node headers are present on CI)", () => {
    expect(hasNativeAddon()).toBe(true);
  });

  it("writes and reads xattrs on a non-UTF-8 path, in llistxattr order, values raw", () => {
    const p = Buffer.concat([Buffer.from(join(dir(), "n")), Buffer.from([0xc3, 0x28, 0xff])]);
    writeFileSync(p, "");
    writeXattr(p, Buffer.from("user.z"), Buffer.from([0, 255, 10]));
    writeXattr(p, Buffer.from("user.a"), new Uint8Array(0));
    writeXattr(p, Buffer.from("trusted.m"), Buffer.from("x".repeat(3000)));
    const got = readXattrs(p).map((x) => [x.key.toString(), x.val.toString("hex")]);
    expect(got).toEqual(pyXattrs(p));
    expect(got.length).toBe(3);
  });

  it("does not follow symlinks", () => {
    const d = dir();
    writeFileSync(join(d, "target"), "");
    writeXattr(Buffer.from(join(d, "target")), Buffer.from("user.t"), Buffer.from("1"));
    symlinkSync("target", join(d, "link"));
    expect(readXattrs(Buffer.from(join(d, "link")))).toEqual([]);
    writeXattr(Buffer.from(join(d, "link")), Buffer.from("trusted.l"), Buffer.from("2"));
    expect(pyXattrs(Buffer.from(join(d, "link")))).toEqual([["trusted.l", "32"]]);
    expect(pyXattrs(Buffer.from(join(d, "target")))).toEqual([["user.t", "31"]]);
  });

  it("creates device nodes whose numbers stat(1) reports back", () => {
    const d = dir();
    mknod(null, Buffer.from(join(d, "c")), 0o020000, 0o600, 4095, 1048575);
    mknod(null, Buffer.from(join(d, "b")), 0o060000, 0o600, 8, 1);
    expect(execFileSync("stat", ["-c", "%F %t %T", join(d, "c"), join(d, "b")], { encoding: "utf8" }).trim().split("\n")).toEqual([
      "character special file fff fffff",
      "block special file 8 1",
    ]);
    expect(() => mknod(null, Buffer.from(join(d, "c")), 0o020000, 0o600, 1, 3)).toThrow(/EEXIST/);
  });

  it("turns OS errors into PfsError IO naming the path", () => {
    expect(() => readXattrs(Buffer.from("/nonexistent/x"))).toThrow(/reading xattrs of \/nonexistent\/x: ENOENT/);
  });
});
