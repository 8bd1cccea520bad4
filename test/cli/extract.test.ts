import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fixtureDir } from "../helpers/oci-fixtures.ts";
import { runCli, spawnCli } from "../helpers/run-cli.ts";
import { showKey, snapshotTree } from "../helpers/snapshot.ts";
import { MIXED_TREE, makeTree, removeTree, tempDir } from "../helpers/tree.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeTree(d);
});
const scratch = (): string => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
/** fs-verity of the mixed-noop fixture's manifest (what `build` printed for it). */
const MIXED_VERITY = "c5f40a7eeb781087bc55861a02d50e121fdaa2b33702b2c8ed6fcace53b9350b";

describe("puzzlefs extract", () => {
  it("extracts the mixed-noop fixture (not built by us) into the tree spec §6 describes, checked by Python", async () => {
    const want = scratch();
    makeTree(want, MIXED_TREE);
    const dest = join(scratch(), "x");
    const r = await runCli(["extract", "--digest", MIXED_VERITY, `${fixtureDir("mixed-noop")}:mixed`, dest]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe(`extracted into ${dest}: 4 files (293 KiB), 2 dirs, 1 symlinks, 1 hard links, 1 fifos, 1 devices\n`);
    const a = snapshotTree(dest);
    const b = snapshotTree(want);
    expect(Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).map(showKey)).toEqual([]);
    expect(Object.keys(a)).toEqual(Object.keys(b));
  });

  it("refuses a non-empty DEST (exit 1) unless --force", async () => {
    const dest = scratch();
    writeFileSync(join(dest, "something"), "x");
    let r = await runCli(["extract", `${fixtureDir("sekien-noop")}:test`, dest]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`puzzlefs: ${dest} exists and is not empty\n  hint: extract into an empty or new directory, or pass --force to extract over it\n`);
    r = await runCli(["extract", "--force", `${fixtureDir("sekien-noop")}:test`, dest]);
    expect(r.code).toBe(0);
    expect(Object.keys(snapshotTree(dest)).map(showKey).sort()).toEqual(["", "/SekienAkashita.jpg", "/something"]);
  });

  it("a missing tag or a wrong --digest is exit 2 and creates nothing", () => {
    const parent = scratch();
    const dest = join(parent, "x");
    let r = spawnCli(["extract", `${fixtureDir("sekien-noop")}:nope`, dest]);
    expect([r.code, r.stdout.length]).toEqual([2, 0]);
    expect(r.stderr).toMatch(/^puzzlefs: tag "nope" in .*: not found\n {2}hint: available tags: test\n$/);
    r = spawnCli(["extract", "--digest", "0".repeat(64), `${fixtureDir("sekien-noop")}:test`, dest]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/fs-verity mismatch/);
    mkdirSync(dest);
    expect(snapshotTree(dest)).toMatchObject({ "": { type: "dir" } });
    expect(Object.keys(snapshotTree(dest))).toEqual([""]);
  });

  it("--help describes the command", async () => {
    const r = await runCli(["extract", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/Usage: puzzlefs extract \[options\] <OCI_DIR:TAG> <DEST>[\s\S]*--force[\s\S]*--digest <hex>/);
  });
});
