#!/usr/bin/env bash
# The one test command (README "Quick start", called by .ci/run): installs
# what the tests need, type-checks, runs the unit suite and the real-peer
# integration suite, and prints a plain "N passed, N failed" line.
# Exit status is non-zero when anything failed.
#   SUITES="unit"   run only the unit suite (default "unit integration")
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
fi

extra_failed=0
if ! npx tsc --noEmit -p tsconfig.json; then
  echo "typecheck: FAILED"
  extra_failed=1
fi

status=0
for suite in ${SUITES:-unit integration}; do
  rm -f ".vitest-$suite.json"
  cfg=vitest.config.ts
  [[ $suite == integration ]] && cfg=vitest.integration.config.ts
  npx vitest run --config "$cfg" --reporter=default --reporter=json --outputFile=".vitest-$suite.json" || status=1
done

node scripts/summarize-tests.mjs $extra_failed ${SUITES:-unit integration} || status=1
[[ $extra_failed -eq 0 ]] || status=1
exit $status
