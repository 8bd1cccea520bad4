#!/usr/bin/env node
// Sum vitest JSON reports into the plain line CI reads: "N passed, N failed".
// Usage: summarize-tests.mjs EXTRA_FAILED SUITE... (reads .vitest-SUITE.json)
// A suite whose report is missing (vitest crashed) counts as one failure.
import { existsSync, readFileSync } from "node:fs";

const [extra, ...suites] = process.argv.slice(2);
let passed = 0;
let failed = Number(extra) || 0;
for (const s of suites) {
  const f = `.vitest-${s}.json`;
  if (!existsSync(f)) {
    console.error(`summarize: ${f} missing (the ${s} suite did not finish)`);
    failed++;
    continue;
  }
  const r = JSON.parse(readFileSync(f, "utf8"));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  // A file that fails to load has no tests but is a failure.
  for (const t of r.testResults ?? []) if (t.status === "failed" && (t.assertionResults ?? []).length === 0) failed++;
  console.error(`summarize: ${s}: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
