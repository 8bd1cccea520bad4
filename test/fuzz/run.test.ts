/**
 * A short coverage-guided run of each fuzz target (fuzz/run.ts → Jazzer.js →
 * libFuzzer), from the committed seeds into a scratch corpus: Jazzer must
 * load (through fuzz/jazzer-compat.cjs on Debian 12's glibc), instrument
 * src/, execute the target many times and find nothing (exit 0).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { patchElf } from "../../fuzz/jazzer-compat.cjs";
import { runFuzz } from "../../fuzz/run.ts";

const scratch = mkdtempSync(join(tmpdir(), "pfs-fuzz-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Seconds per target and the executions that must at least happen in them (a 2-core machine under load). */
const RUNS = { session: { seconds: 5, min: 5_000 }, image: { seconds: 6, min: 100 } } as const;

describe("fuzz/run.ts (Jazzer.js)", () => {
  for (const [target, { seconds, min }] of Object.entries(RUNS)) {
    it(`${target}: a ${seconds} s run executes ≥ ${min} inputs, instruments src/ and finds nothing`, { timeout: 120_000 }, async () => {
      const r = await runFuzz(target, seconds, { corpus: mkdtempSync(join(scratch, `${target}-`)), quiet: true });
      const tail = r.output.split("\n").slice(-25).join("\n");
      expect(r.code, tail).toBe(0);
      expect(r.executions, tail).toBeGreaterThanOrEqual(min);
      expect(r.cov, "edges covered in src/").toBeGreaterThan(100);
      expect(r.output).not.toMatch(/Uncaught Exception|Test unit written/);
      process.stdout.write(`fuzz ${target}: ${r.executions} executions in ${r.seconds} s, corpus ${r.corpusFiles} inputs, cov ${r.cov}\n`);
    });
  }
});

describe("fuzz/jazzer-compat.cjs", () => {
  it("renames exactly the glibc 2.38 / libstdc++ 13 needs of the prebuilt addon (and nothing in an addon without them)", () => {
    const addon = readFileSync(join(import.meta.dirname, "../../node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node"));
    const b = Buffer.from(addon);
    const edits = patchElf(b);
    // Two version needs (GLIBC_2.38, GLIBCXX_3.4.32) and two symbol names (__isoc23_strtol, __isoc23_strtoul), or none
    // if a future prebuild no longer needs them.
    expect([0, 4]).toContain(edits);
    if (edits === 4) {
      expect(b.includes("GLIBC_2.38")).toBe(true); // the string stays in .dynstr; only references moved
      expect(patchElf(Buffer.from(b))).toBe(0); // idempotent: nothing left to rename
    }
  });
});
