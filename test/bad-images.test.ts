/**
 * The malformed-image corpus (test/fixtures/bad/, table in cases.ts): each
 * image is refused at load with exactly its error, or, for chunk-level
 * damage, opens and fails exactly the affected reads while the other files
 * read their good bytes; `puzzlefs info`/`ls` (load) and `cat` (read) exit 2
 * with the one-line error; and extracting any of them writes nothing outside
 * the target directory.
 */
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ExitCode, PfsError } from "../src/common/errors.ts";
import { extract } from "../src/puzzlefs/builder/extract.ts";
import { openImage } from "../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../src/puzzlefs/reader/path.ts";
import { CASES } from "./fixtures/bad/cases.ts";
import { BAD_DIR, GOOD_FILES, TAG, edit, makeImage } from "./fixtures/bad/image.ts";
import { I } from "./helpers/test-image.ts";
import { makeCorpus } from "./fixtures/bad/make.ts";
import { runCli } from "./helpers/run-cli.ts";

const scratch = mkdtempSync(join(tmpdir(), "pfs-bad-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const dirOf = (name: string) => join(BAD_DIR, name);
const msg = (name: string, m: string) => m.replaceAll("{dir}", dirOf(name));

async function outcome(name: string, path?: string): Promise<PfsError | "ok"> {
  try {
    const img = await openImage(dirOf(name), TAG);
    if (path) await img.tree.readFile(lookupPath(img.tree, path), 0, 1 << 20);
    return "ok";
  } catch (e) {
    if (!(e instanceof PfsError)) throw e;
    return e;
  }
}

/** stderr of a failed command: exactly "puzzlefs: <message>", optionally followed by one hint line. */
function expectOneLineError(stderr: string, message: string): void {
  const lines = stderr.replace(/\n$/, "").split("\n");
  expect(lines[0]).toBe(`puzzlefs: ${message}`);
  expect(lines.length).toBeLessThanOrEqual(2);
  if (lines.length === 2) expect(lines[1]).toMatch(/^ {2}hint: \S/);
}

describe("malformed images: the corpus", () => {
  it("has at least 30 malformed images, each a distinct defect", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    process.stdout.write(`malformed images: ${CASES.length} (${CASES.filter((c) => c.expect.phase === "load").length} refused at load, ${CASES.filter((c) => c.expect.phase === "read").length} failing reads)\n`);
  });

  it("the committed files are exactly what make.ts generates", () => {
    const out = join(scratch, "regen");
    makeCorpus(out);
    const tree = (root: string): Record<string, string> => {
      const acc: Record<string, string> = {};
      const walk = (d: string, rel: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = join(d, e.name);
          if (e.isDirectory()) walk(p, `${rel}${e.name}/`);
          else if (!p.endsWith(".ts")) acc[`${rel}${e.name}`] = createHash("sha256").update(readFileSync(p)).digest("hex");
        }
      };
      walk(root, "");
      return acc;
    };
    expect(tree(BAD_DIR)).toEqual(tree(out));
  });

  it("the image they are made from is valid: every file reads its bytes", async () => {
    const img = await openImage(dirOf("good"), TAG);
    for (const [p, want] of Object.entries(GOOD_FILES)) expect(Buffer.from(await img.tree.readFile(lookupPath(img.tree, p), 0, 1 << 20))).toEqual(want);
  });
});

describe("malformed images: exact errors (library)", () => {
  for (const c of CASES) {
    const e = c.expect;
    it(`${c.name}: ${c.what}`, async () => {
      if (e.phase === "load") {
        const r = await outcome(c.name);
        expect(r).toBeInstanceOf(PfsError);
        expect([(r as PfsError).code, (r as PfsError).message]).toEqual([e.code, msg(c.name, e.message)]);
        return;
      }
      const r = await outcome(c.name, e.path);
      expect(r).toBeInstanceOf(PfsError);
      expect([(r as PfsError).code, (r as PfsError).message]).toEqual([e.code, msg(c.name, e.message)]);
      const img = await openImage(dirOf(c.name), TAG);
      for (const p of e.fine) expect(Buffer.from(await img.tree.readFile(lookupPath(img.tree, p), 0, 1 << 20)), p).toEqual(GOOD_FILES[p]);
    });
  }
});

describe("malformed images: the CLI exits 2 with the one-line error", () => {
  for (const c of CASES) {
    const e = c.expect;
    const ref = `${dirOf(c.name)}:${TAG}`;
    it(`${c.name}: ${e.phase === "load" ? "info and ls" : `cat ${e.path} fails, cat ${e.fine[0]} works`}`, async () => {
      if (e.phase === "load") {
        for (const cmd of [["info", ref], ["ls", ref]]) {
          const r = await runCli(cmd);
          expect(r.code, cmd.join(" ")).toBe(ExitCode.IMAGE);
          expectOneLineError(r.stderr, msg(c.name, e.message));
          expect(r.stdout.length).toBe(0);
        }
        return;
      }
      const bad = await runCli(["cat", ref, e.path]);
      expect(bad.code).toBe(e.code === "USAGE" ? ExitCode.USAGE : ExitCode.IMAGE);
      expectOneLineError(bad.stderr, msg(c.name, e.message));
      const good = await runCli(["cat", ref, e.fine[0]!]);
      expect([good.code, good.stderr]).toEqual([0, ""]);
      expect(good.stdout).toEqual(GOOD_FILES[e.fine[0]!]);
    });
  }
});

/** Every entry under `root` except `skip`: type, mode, size, mtime, content hash or link target. */
function listing(root: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (p === skip) continue;
      const st = lstatSync(p);
      const what = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isFile() ? createHash("sha256").update(readFileSync(p)).digest("hex") : st.isDirectory() ? "dir" : "other";
      out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${what}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

describe("malformed images: extraction never writes outside the target", () => {
  it("every image (and two valid ones) extracted into a/b/c/target: the tree around it is unchanged", async () => {
    // Valid but hostile to a naive extractor: a symlink pointing far up, out of the target.
    const escape = join(scratch, "images", "symlink-escape");
    makeImage(escape, { rootfs: edit.inodes((ins) => ins.map((i) => (i.ino === 5n ? I.lnk(5, "../../../../../../tmp") : i))) });
    let refused = 0;
    let extracted = 0;
    for (const name of ["good", "symlink-escape", ...CASES.map((c) => c.name)]) {
      // A sandbox with neighbours a traversal would hit: siblings at every level above the target.
      const box = join(scratch, `x-${name}`);
      const target = join(box, "a", "b", "c", "target");
      mkdirSync(target, { recursive: true });
      for (const lvl of [box, join(box, "a"), join(box, "a", "b"), join(box, "a", "b", "c")]) {
        writeFileSync(join(lvl, "passwd"), `canary ${lvl}\n`);
        mkdirSync(join(lvl, "etc"), { recursive: true });
      }
      const before = listing(scratch, target);
      try {
        const img = await openImage(name === "symlink-escape" ? escape : dirOf(name), TAG);
        await extract(img.tree, target);
        extracted++;
      } catch (e) {
        if (!(e instanceof PfsError)) throw e;
        refused++;
      }
      expect(listing(scratch, target), name).toEqual(before);
      if (name === "symlink-escape") expect(readlinkSync(join(target, "l"))).toBe("../../../../../../tmp");
      rmSync(box, { recursive: true, force: true });
    }
    expect(extracted).toBeGreaterThanOrEqual(2); // good and symlink-escape
    expect(refused).toBe(CASES.length);
  });
});
