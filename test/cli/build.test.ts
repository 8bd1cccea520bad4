import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openImage } from "../../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../../src/puzzlefs/reader/path.ts";
import { blobNames, manifestOf, rootfsViaCapnp } from "../helpers/layout-check.ts";
import { FIXTURES } from "../helpers/oci-fixtures.ts";
import { runCli, spawnCli } from "../helpers/run-cli.ts";
import { showKey, snapshotTree, type TreeSnapshot } from "../helpers/snapshot.ts";
import { makeTortureTree, olderTortureSpec, randomBytes, tortureSpec } from "../helpers/torture-tree.ts";
import { makeTree, removeTree, tempDir } from "../helpers/tree.ts";

const dirs: string[] = [];
const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) spawnSync("umount", [m]);
  for (const d of dirs.splice(0)) removeTree(d);
});
const scratch = (): string => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

const DIGEST_LINE = /^puzzlefs image manifest digest: ([0-9a-f]{64})\n$/;
const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));

/** Entries that differ between two snapshots, readable. */
function diff(a: TreeSnapshot, b: TreeSnapshot): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push(`${showKey(k)}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
  }
  return out;
}

async function buildOk(args: string[]): Promise<string> {
  const r = await runCli(["build", ...args]);
  expect(r.stderr).not.toMatch(/^puzzlefs: /m);
  expect(r.code).toBe(0);
  const m = DIGEST_LINE.exec(r.stdout.toString());
  expect(m).not.toBeNull();
  return m![1]!;
}

async function extractOk(ref: string, dest: string): Promise<string> {
  const r = await runCli(["extract", ref, dest]);
  expect(r.code).toBe(0);
  expect(r.stdout.length).toBe(0);
  return r.stderr;
}

describe("puzzlefs build → read → extract round trip of a torture tree", () => {
  it("gives an identical tree (content, modes, owners, xattrs, links, devices), with and without -c; twice the same digest", async () => {
    const src = scratch();
    makeTortureTree(src, tortureSpec());
    const want = snapshotTree(src, ["sock"]);
    expect(Object.values(want).map((e) => e.type).sort()).toEqual(expect.arrayContaining(["blk", "chr", "dir", "fifo", "file", "lnk"]));
    const out = join(scratch(), "oci");
    for (const [tag, flags] of [["plain", []], ["zstd", ["-c"]]] as const) {
      const digest = await buildOk([...flags, src, `${out}:${tag}`]);
      expect(await buildOk([...flags, src, `${out}:${tag}-again`])).toBe(digest);
      const { rootfs } = rootfsViaCapnp(out, tag);
      const files = rootfs.metadatas[0]!.inodes.flatMap((n) => (n.mode.kind === "file" ? n.mode.chunks : []));
      expect(new Set(files.map((c) => c.blob.compressed))).toEqual(new Set(flags.length ? [true, false] : [false]));
      // the reader sees the socket the extract step leaves out
      const img = await openImage(out, tag, { digest: flags.length ? undefined : digest });
      expect(img.tree.node(lookupPath(img.tree, "/tmp/sock")).kind).toBe("sock");
      const dest = join(scratch(), "x");
      const notes = await extractOk(`${out}:${tag}`, dest);
      expect(notes).toMatch(/note: skipped .*\/tmp\/sock: socket/);
      expect(diff(snapshotTree(dest), want)).toEqual([]);
    }
  });

  it("as a delta over an older tag: both tags extract to their own trees", async () => {
    const v1 = scratch();
    makeTortureTree(v1, olderTortureSpec());
    const v2 = scratch();
    makeTortureTree(v2, tortureSpec());
    const out = join(scratch(), "oci");
    await buildOk(["-c", v1, `${out}:v1`]);
    await buildOk(["-c", "-b", "v1", v2, `${out}:v2`]);
    expect(rootfsViaCapnp(out, "v2").rootfs.metadatas).toHaveLength(2);
    for (const [tag, src] of [["v2", v2], ["v1", v1]] as const) {
      const dest = join(scratch(), "x");
      await extractOk(`${out}:${tag}`, dest);
      expect(diff(snapshotTree(dest), snapshotTree(src, ["sock"]))).toEqual([]);
    }
  });

  it("skopeo copy oci:A:tag oci:B:tag copies our images (plain and -c) and the copy reads back identically", async () => {
    const src = scratch();
    makeTortureTree(src, tortureSpec({ bigFileBytes: 300 * 1024 }));
    const a = join(scratch(), "a");
    await buildOk([src, `${a}:plain`]);
    await buildOk(["-c", src, `${a}:zstd`]);
    const want = snapshotTree(src, ["sock"]);
    for (const tag of ["plain", "zstd"]) {
      const b = join(scratch(), "b");
      execFileSync("skopeo", ["copy", "-q", `oci:${a}:${tag}`, `oci:${b}:${tag}`]);
      expect(manifestOf(b, tag).hex).toBe(manifestOf(a, tag).hex);
      expect(blobNames(b).every((n) => blobNames(a).includes(n))).toBe(true);
      const dest = join(scratch(), "x");
      await extractOk(`${b}:${tag}`, dest);
      expect(diff(snapshotTree(dest), want)).toEqual([]);
    }
  });
});

describe("puzzlefs build: output", () => {
  it("prints exactly upstream's line on stdout (the manifest's fs-verity) and the summary on stderr, no progress bar off a terminal", () => {
    const src = scratch();
    makeTree(src, [["SekienAkashita.jpg", { type: "file", data: JPG }]]);
    const r = spawnCli(["build", src, `${join(scratch(), "oci")}:test`]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe("puzzlefs image manifest digest: 551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d\n");
    expect(r.stderr).toMatch(/files: +1 .*\n {2}bytes in: +107 KiB \(109466\)\n {2}bytes stored: .*\n {2}chunks: +1 \(1 unique\)\n {2}dedup ratio: +1\.00×\n$/);
    expect(r.stderr).not.toMatch(/\x1b/);
  });

  it("shows a progress bar on a terminal", () => {
    const src = scratch();
    makeTree(src, [["big", { type: "file", data: randomBytes(4 << 20, 1) }]]);
    const cmd = ["node", "--import", "tsx", "test/helpers/cli-entry.ts", "build", src, `${join(scratch(), "oci")}:t`].join(" ");
    const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { cwd: resolve(import.meta.dirname, "../.."), encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/building \[[░█]+\] \d+% \| [\d.]+ \w*B \/ 4\.00 MiB/);
    expect(r.stdout).toMatch(/puzzlefs image manifest digest: [0-9a-f]{64}/);
  });

  it("notes on stderr that an existing tag was replaced", async () => {
    const src = scratch();
    makeTree(src, [["f", { type: "file", data: "1" }]]);
    const out = join(scratch(), "oci");
    await buildOk([src, `${out}:t`]);
    writeFileSync(join(src, "f"), "2");
    const r = await runCli(["build", src, `${out}:t`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^note: tag "t" already existed \(sha256:[0-9a-f]{64}\); it now points at the new image/m);
  });

  it("--help describes the command, its options and examples", async () => {
    const r = await runCli(["build", "--help"]);
    expect(r.code).toBe(0);
    const help = r.stdout.toString();
    expect(help).toMatch(/Usage: puzzlefs build \[options\] <ROOTFS> <OCI_DIR:TAG>/);
    for (const o of ["-c, --compression", "-b, --base-layer <TAG>", "-j, --jobs <N>", "Examples:"]) expect(help).toContain(o);
  });
});

describe("puzzlefs build: errors are one line plus a hint, with the documented exit status", () => {
  const errorLines = (stderr: string) => stderr.trimEnd().split("\n");

  it("missing rootfs (1), bad OCI_DIR:TAG (1), bad -j (1), missing -b tag (2)", async () => {
    const out = join(scratch(), "oci");
    let r = await runCli(["build", "/nonexistent/rootfs", `${out}:t`]);
    expect([r.code, errorLines(r.stderr)]).toEqual([1, ["puzzlefs: rootfs directory /nonexistent/rootfs does not exist", "  hint: give the directory to build the image from"]]);
    const src = scratch();
    makeTree(src, [["f", { type: "file", data: "x" }]]);
    r = await runCli(["build", src, out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^puzzlefs: Expected oci_dir in the following format <oci_dir>:<tag>.*\n {2}hint: /);
    r = await runCli(["build", "-j", "many", src, `${out}:t`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/option '-j, --jobs <N>' argument 'many' is invalid/);
    await buildOk([src, `${out}:t`]);
    r = await runCli(["build", "-b", "nope", src, `${out}:t2`]);
    expect([r.code, errorLines(r.stderr).length]).toEqual([2, 2]);
    expect(r.stderr).toMatch(/^puzzlefs: base layer: tag "nope" in .*: not found\n {2}hint: available tags: t\n$/);
  });

  it("an unreadable file (as an unprivileged user) is exit 3 naming the file", () => {
    const root = scratch();
    chmodSync(root, 0o755);
    const src = join(root, "src");
    mkdirSync(src);
    makeTree(src, [["ok", { type: "file", data: "fine" }], ["secret", { type: "file", data: "no", mode: 0o600 }]]);
    const out = join(root, "out");
    mkdirSync(out);
    chownSync(out, 65534, 65534);
    const r = spawnSync(process.execPath, ["--import", "tsx", "test/helpers/cli-entry.ts", "build", src, `${out}/oci:t`], {
      cwd: resolve(import.meta.dirname, "../.."),
      uid: 65534,
      gid: 65534,
      encoding: "utf8",
    });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^puzzlefs: opening .*\/src\/secret: EACCES/);
    expect(spawnSync("ls", [join(out, "oci", "index.json")]).status).not.toBe(0);
  });

  it("a full disk is exit 3 with ENOSPC, and index.json keeps its old content", async () => {
    const mnt = join(scratch(), "mnt");
    mkdirSync(mnt);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    mounts.push(mnt);
    const small = scratch();
    makeTree(small, [["f", { type: "file", data: "small" }]]);
    await buildOk([small, `${mnt}/oci:keep`]);
    const index = readFileSync(join(mnt, "oci/index.json"));
    const big = scratch();
    makeTree(big, [["big", { type: "file", data: randomBytes(3 << 20, 2) }]]);
    const r = await runCli(["build", big, `${mnt}/oci:t`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^puzzlefs: writing blob sha256:[0-9a-f]{64}: ENOSPC/);
    expect(readFileSync(join(mnt, "oci/index.json")).equals(index)).toBe(true);
  });
});
