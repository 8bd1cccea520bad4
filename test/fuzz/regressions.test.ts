/**
 * Every input the fuzzers ever found a bug with (test/fixtures/fuzz/<target>/)
 * and every committed seed (fuzz/seeds/<target>/) replayed through the same
 * target code, in-process: no exception but a one-line PfsError, and for the
 * recorded findings the exact outcome the fix gives.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../src/common/errors.ts";
import { allSeeds } from "../../fuzz/seeds.ts";
import { decodeInput, exerciseImage } from "../../fuzz/targets/image.ts";
import { fuzz as fuzzSession } from "../../fuzz/targets/session.ts";

const FIX = join(import.meta.dirname, "../fixtures/fuzz");
const SEEDS = join(import.meta.dirname, "../../fuzz/seeds");
const scratch = mkdtempSync(join(tmpdir(), "pfs-fuzz-regress-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const files = (dir: string) => readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))] as const);

/** What each recorded finding must now give (code and message pattern), and why it was a finding. */
const FINDINGS: Record<string, { code: ErrorCode; message: RegExp; was: string }> = {
  "zero-sized-dir-entries": {
    code: ErrorCode.LIMIT,
    // Either bound stops it now: the zero-sized element cap or the traversal budget proportional to the message.
    message: /Dir\.entries @0x[0-9a-f]+: exceeds limit \((\d+ zero-sized list elements > \d+ \(one per message word\)|traversal budget of 65536 words)\)$/,
    was: "a 904-byte rootfs whose Dir.entries list claimed millions of zero-sized entries: 270 MB and 0.9 s per open",
  },
  "json-error-multiline": {
    code: ErrorCode.FORMAT,
    message: /index\.json: not valid JSON \(Unexpected token '\\u0000', .*\\u000a.* is not valid JSON\)$/,
    was: "V8's JSON.parse message quoted raw newlines and NULs from index.json into a multi-line error",
  },
};

describe("fuzz regressions: image loader", () => {
  for (const [name, bytes] of files(join(FIX, "image"))) {
    it(`${name}: ${FINDINGS[name]?.was ?? "replays cleanly"}`, async () => {
      const r = await exerciseImage(scratch, decodeInput(bytes));
      const want = FINDINGS[name];
      if (want) {
        expect(r.error?.code).toBe(want.code);
        expect(r.error?.message).toMatch(want.message);
      }
    });
  }

  it("every committed seed opens, walks, reads and plans without error", async () => {
    for (const [name, bytes] of files(join(SEEDS, "image"))) {
      const r = await exerciseImage(scratch, decodeInput(bytes));
      expect(r.error?.message, name).toBeUndefined();
      expect(r, name).toMatchObject({ opened: true, planned: true });
      expect(r.filesRead, name).toBe(2);
    }
  });

  it("the committed seeds are what fuzz/seeds.ts generates", () => {
    for (const [target, list] of Object.entries(allSeeds())) {
      expect(files(join(SEEDS, target)).map(([n, b]) => [n, b.toString("hex")]).sort()).toEqual(list.map(([n, b]) => [n, b.toString("hex")]).sort());
    }
  });
});

describe("fuzz regressions: NBD session", () => {
  it("every recorded input and seed replays without breaking a session invariant", () => {
    const inputs = [...files(join(FIX, "session")), ...files(join(SEEDS, "session"))];
    expect(inputs.length).toBeGreaterThanOrEqual(7);
    for (const [name, bytes] of inputs) expect(() => fuzzSession(bytes), name).not.toThrow();
  });
});
