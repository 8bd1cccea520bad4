import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest, compareManifests } from "../../integration/lib/manifest.ts";
import { generateTortureTree, prng, type TortureSummary } from "../../integration/lib/torture.ts";

// Oracles: GNU find, stat and getfattr look at what the generator made.
const tmp = mkdtempSync(join(tmpdir(), "torture-test-"));
const a = join(tmp, "a");
let s: TortureSummary;
const root = process.getuid?.() === 0;

afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  s = await generateTortureTree(a, { bigDirEntries: 400 });
});

const sh = (cmd: string, dir = a): string =>
  execFileSync("sh", ["-c", `cd "$1" && ${cmd}`, "sh", dir]).toString("latin1").trim();
const count = (type: string): number => Number(sh(`find . -type ${type} | wc -l`));

describe("generateTortureTree", () => {
  it("makes what its summary says, as find counts it", () => {
    expect(count("f")).toBe(s.files + s.hardlinks);
    expect(count("d")).toBe(s.dirs + 1);
    expect(count("l")).toBe(s.symlinks);
    expect(count("p")).toBe(s.fifos);
    expect(count("s")).toBe(s.sockets);
    expect(count("c") + count("b")).toBe(s.devices);
    expect(Number(sh("ls -A bigdir | wc -l"))).toBe(400);
    if (root) expect(s.skipped).toEqual([]);
  });

  it("has hard links, long and short symlinks, and 255-byte and non-UTF-8 names", () => {
    expect(sh("stat -c %h hardlinks/a")).toBe("3");
    expect(sh("readlink symlinks/long-4095 | tr -d '\\n' | wc -c")).toBe("4095");
    expect(sh("readlink symlinks/len-60 | tr -d '\\n' | wc -c")).toBe("60");
    const names = sh("ls -A names").split("\n");
    expect(names).toContain("a".repeat(255));
    expect(names.map((n) => Buffer.byteLength(n, "latin1"))).toContain(255);
    expect(names).toContain("n\xff\xfe\x80");
  });

  it("sets special modes, and as root 32-bit owners, devices and privileged xattrs", () => {
    expect(sh("stat -c %a modes/setuid modes/setgid modes/sticky-dir modes/setgid-dir").split("\n")).toEqual([
      "4755",
      "2755",
      "1777",
      "2775",
    ]);
    expect(sh("getfattr --only-values -n user.a xattrs/user")).toBe("1");
    if (!root) return;
    expect(sh("stat -c '%u %g' owners/uid-max owners/uid-70000").split("\n")).toEqual([
      "4294967294 4294967294",
      "70000 80000",
    ]);
    expect(sh("stat -c '%a %u' owners/setuid-owned")).toBe("4750 1234");
    expect(sh("stat -c '%F %t %T' special/big-chr special/max-blk").split("\n")).toEqual([
      "character special file 12c 11170",
      "block special file fff fffff",
    ]);
    expect(sh("getfattr -e hex -n security.capability xattrs/capability | grep =")).toBe(
      "security.capability=0x0100000200040000000000000000000000000000",
    );
    expect(sh("getfattr -h -e text -n trusted.on-symlink xattrs/symlink | grep =")).toBe('trusted.on-symlink="l"');
  });

  it("is deterministic: a second tree has the same manifest and xattrs", async () => {
    const b = join(tmp, "b");
    await generateTortureTree(b, { bigDirEntries: 400 });
    expect(compareManifests(buildManifest(a), buildManifest(b))).toEqual([]);
    const dump = (d: string): string => sh("getfattr -R -P -h -d -m - -e hex . | sort", d);
    expect(dump(b)).toBe(dump(a));
    expect(prng(7)(16)).toEqual(prng(7)(16));
  });
});
