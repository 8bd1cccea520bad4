import { defineConfig } from "vitest/config";

// Real-peer suites: QEMU guests, nbdfuse + loop mounts, load and fault runs.
// Files run one at a time: each boots VMs that want the whole (2-core) machine.
export default defineConfig({
  test: {
    include: ["integration/**/*.test.ts"],
    // Guest assets, corpus and exports, made once for all scenario files.
    globalSetup: ["integration/setup.ts"],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    pool: "forks",
    passWithNoTests: true,
  },
});
