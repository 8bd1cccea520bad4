import { execFileSync } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildManifest,
  compareManifests,
  manifestFromJson,
  manifestToJson,
  parseGuestReport,
  showPath,
  splitDev,
} from "../../integration/lib/manifest.ts";

// Oracles: GNU stat and sha256sum print the same fields the guest's busybox
// prints (same stat -c format), so their output must parse back to the
// manifest that buildManifest took with Node's lstat.
const tmp = mkdtempSync(join(tmpdir(), "manifest-test-"));
const root = join(tmp, "tree");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  mkdirSync(join(root, "dir/sub"), { recursive: true });
  writeFileSync(join(root, "a"), "hello\n");
  writeFileSync(join(root, "dir/with space"), "x".repeat(10000));
  writeFileSync(join(root, "empty"), "");
  linkSync(join(root, "a"), join(root, "dir/a-link"));
  symlinkSync("a", join(root, "sym"));
  symlinkSync("x' -> 'y", join(root, "odd'sym"));
  writeFileSync(Buffer.from(join(root, "bad-\xff-name"), "latin1"), "latin1");
  execFileSync("mkfifo", [join(root, "fifo")]);
  if (process.getuid?.() === 0) execFileSync("mknod", [join(root, "dev"), "c", "300", "70000"]);
});

/** The guest's report, produced on the host with GNU tools. */
function gnuReport(dir: string): string[] {
  const sh = (cmd: string): string[] =>
    execFileSync("sh", ["-c", `cd "$1" && ${cmd}`, "sh", dir]).toString("latin1").split("\n").filter(Boolean);
  const stats = sh(`find . -exec stat -c 'S 0 %f %u %g %h %t %T %s %i %n' {} +`);
  const hashes = sh(`find . -type f -exec sha256sum {} + | sed 's/^/H 0 /'`);
  const links = sh(`find . -type l -print`).map((p) => {
    const target = execFileSync("readlink", [join(dir, p)]).toString("latin1").replace(/\n$/, "");
    return `L 0 '${p}' -> '${target}'`;
  });
  return [...stats, "noise line", ...hashes, ...links];
}

describe("manifest", () => {
  it("a report printed by GNU stat/sha256sum parses back to the host's manifest", () => {
    const m = buildManifest(root);
    const seen = parseGuestReport(gnuReport(root), 0);
    expect(seen.size).toBe(m.size);
    expect(compareManifests(m, seen)).toEqual([]);
    expect(seen.get("./odd'sym")?.target).toBe("x' -> 'y");
    expect(seen.get("./a")?.sha256).toBe("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  });

  it("reports each kind of difference", () => {
    const m = buildManifest(root);
    const lines = gnuReport(root)
      .filter((l) => !l.endsWith(" ./empty")) // a file the guest did not see
      .map((l) => (l.startsWith("H 0 ") && l.endsWith(" ./a") ? "H 0 " + "0".repeat(64) + "  ./a" : l));
    lines.push("S 0 81a4 0 0 1 0 0 0 999999 ./extra");
    lines.push("S 0 41c0 0 0 2 0 0 16384 11 ./lost+found"); // allowed: the filesystem adds it
    const diffs = compareManifests(m, parseGuestReport(lines, 0));
    expect(diffs).toContain("missing: ./empty");
    expect(diffs).toContain("unexpected: ./extra");
    expect(diffs.some((d) => d.startsWith("./a: sha256: expected 5891b5b5"))).toBe(true);
    expect(diffs.length).toBe(3);
  });

  it("detects broken hard-link groups and wrong owners", () => {
    const m = buildManifest(root);
    const seen = parseGuestReport(gnuReport(root), 0);
    seen.get("./dir/a-link")!.ino = "123456789";
    seen.get("./sym")!.uid = 4242;
    const diffs = compareManifests(m, seen);
    expect(diffs.some((d) => d.startsWith("./a: hard-link group"))).toBe(true);
    expect(diffs).toContain(`./sym: uid: expected ${process.getuid?.() ?? 0}, got 4242`);
  });

  it("keeps non-UTF-8 names byte for byte and prints them escaped", () => {
    const m = buildManifest(root);
    expect(m.has("./bad-\xff-name")).toBe(true);
    expect(showPath("./bad-\xff-name")).toBe("./bad-\\xff-name");
    expect(compareManifests(m, manifestFromJson(manifestToJson(m)))).toEqual([]);
  });

  it("splits dev_t like glibc, including majors and minors above 255", () => {
    expect(splitDev(BigInt((5 << 8) | 1))).toEqual([5, 1]);
    if (process.getuid?.() === 0) {
      const e = buildManifest(root).get("./dev")!;
      expect([e.rdevMajor, e.rdevMinor]).toEqual([300, 70000]);
    }
  });
});
