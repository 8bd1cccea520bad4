/**
 * The ext acceptance items that need a real Debian tree (issue 4): the
 * Debian minbase + /torture image, built with `puzzlefs build`, written out
 * with `puzzlefs export`, judged by e2fsprogs: `e2fsck -fn` exits 0 and
 * complains about nothing, `dumpe2fs -h` shows the required feature list
 * (and agrees with `puzzlefs info --ext`), `debugfs htree_dump` shows an
 * index on a large directory. Two exports are byte-identical, and equal what
 * `puzzlefs serve` sends for the same tag (nbdcopy). The delta tag (two
 * layers, whiteouts) passes e2fsck too.
 *
 * Runs against the product whatever PUZZLEFS_SUT says: it checks the images
 * every scenario serves by default.
 */
import { createHash } from "node:crypto";
import { createReadStream, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO } from "./lib/paths.ts";
import { run, stopAllChildren, timed } from "./lib/proc.ts";
import { exportDigest, integration, scenarioTimer, workDir } from "./lib/scenario.ts";
import { PuzzlefsServer } from "./lib/server.ts";

const ctx = integration();
const { dir: oci, baseTag, deltaTag } = ctx.images;
let work: string;
let stopTimer: (() => void) | undefined;
const img = (name: string) => join(work, name);

/** The feature list issue 4 requires (dumpe2fs spells extents "extent"). */
const REQUIRED_FEATURES = [
  "extent",
  "filetype",
  "sparse_super",
  "large_file",
  "huge_file",
  "dir_nlink",
  "extra_isize",
  "ext_attr",
  "dir_index",
  "metadata_csum",
];

async function puzzlefs(args: string[]): Promise<string> {
  const r = await run(process.execPath, [join(REPO, "bin/puzzlefs.js"), ...args], { cwd: REPO });
  return r.stdout;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 8 << 20 })) h.update(c as Buffer);
  return h.digest("hex");
}

/** "Key: value" lines of `dumpe2fs -h`. */
function dumpe2fsFields(out: string): Map<string, string> {
  return new Map(
    out
      .split("\n")
      .map((l) => /^([^:]+):\s+(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!.trim()]),
  );
}

beforeAll(async () => {
  stopTimer = scenarioTimer("ext acceptance: puzzlefs export of the Debian minbase image, e2fsck/dumpe2fs/debugfs");
  work = workDir("export");
  await timed("export: puzzlefs export base, base again, delta", async () => {
    await puzzlefs(["export", `${oci}:${baseTag}`, img("base.img")]);
    await puzzlefs(["export", `${oci}:${baseTag}`, img("base-again.img")]);
    await puzzlefs(["export", `${oci}:${deltaTag}`, img("delta.img")]);
  });
});

afterAll(async () => {
  await stopAllChildren();
  stopTimer?.();
});

describe("puzzlefs export of the Debian minbase + /torture image", () => {
  it.each([
    ["base", "base.img"],
    ["delta (two layers, whiteouts)", "delta.img"],
  ])("%s: e2fsck -fn exits 0 and reports nothing but its passes and the summary", async (_what, file) => {
    const r = await run("e2fsck", ["-fn", img(file)], { check: false });
    const out = (r.stdout + r.stderr).trim().split("\n");
    const noise = out.filter(
      (l) => !/^e2fsck \d/.test(l) && !/^Pass \d[A-Z]?: /.test(l) && !/^\S+: \d+\/\d+ files \(.*\), \d+\/\d+ blocks$/.test(l),
    );
    expect(noise, out.join("\n")).toEqual([]);
    expect(r.code, out.join("\n")).toBe(0);
  });

  it("dumpe2fs -h shows the required feature list, no journal, and agrees with puzzlefs info --ext", async () => {
    const f = dumpe2fsFields((await run("dumpe2fs", ["-h", img("base.img")])).stdout);
    const features = f.get("Filesystem features")!.split(/\s+/);
    for (const want of REQUIRED_FEATURES) expect(features).toContain(want);
    expect(features).not.toContain("has_journal");
    expect(f.get("Block size")).toBe("4096");
    expect(f.get("Inode size")).toBe("256");
    expect(f.get("Filesystem volume name")).toBe(baseTag);
    expect(f.get("Filesystem state")).toBe("clean");
    const info = await puzzlefs(["info", "--ext", `${oci}:${baseTag}`]);
    const line = (k: string) => new RegExp(`^ext ${k}:\\s+(.*)$`, "m").exec(info)?.[1];
    expect(line("features")!.split(" ").sort()).toEqual([...features].sort());
    expect(line("uuid")).toBe(f.get("Filesystem UUID"));
    expect(line("inodes")).toMatch(new RegExp(`used of ${f.get("Inode count")} `));
    expect(line("size")).toMatch(new RegExp(`\\(${f.get("Block count")} blocks of 4096`));
  });

  it("debugfs htree_dump shows an index on the torture tree's big directory that reaches every name once", async () => {
    const r = await run("debugfs", ["-R", "htree_dump /torture/bigdir", img("base.img")], { encoding: "latin1" });
    expect(r.stderr.trim()).toMatch(/^debugfs \S+ \(.*\)$/); // the banner, no complaint
    expect(r.stdout).toMatch(/Root node dump:/);
    const leaves = Number(/Number of entries \(count\): (\d+)/.exec(r.stdout)?.[1]);
    expect(leaves).toBeGreaterThan(1);
    // Leaf entries: "INO 0xHASH-MINOR (REC_LEN) NAME", several to a line when short (the names have no spaces).
    const names = [...r.stdout.matchAll(/\b\d+ 0x[0-9a-f]{8}-[0-9a-f]{8} \(\d+\) (\S+)/g)].map((m) => m[1]!);
    const want = readdirSync(join(ctx.base.tree, "torture/bigdir"), { encoding: "latin1" });
    expect(want.length).toBeGreaterThanOrEqual(3000);
    expect(names.filter((n) => n !== "." && n !== "..").sort()).toEqual(want.sort());
  });

  it("two exports are byte-identical, and equal what puzzlefs serve sends for the tag (nbdcopy)", async () => {
    const [a, b] = await Promise.all([sha256File(img("base.img")), sha256File(img("base-again.img"))]);
    expect(b).toBe(a);
    const server = new PuzzlefsServer(join(work, "serve"));
    try {
      await server.start([{ name: baseTag, oci: { dir: oci, tag: baseTag } }]);
      expect((await exportDigest(server.port, baseTag)).sha256).toBe(a);
    } finally {
      await server.stop();
    }
  });
});
