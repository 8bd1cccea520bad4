import { defineConfig } from "vitest/config";

// Unit tests: everything under test/. Real-peer suites that boot QEMU live in
// integration/ and run with vitest.integration.config.ts.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
