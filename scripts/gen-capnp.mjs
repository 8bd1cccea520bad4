#!/usr/bin/env node
// Generate TypeScript from schemas/*.capnp with capnp-es (needs the `capnp`
// binary from Debian's capnproto). Usage: node scripts/gen-capnp.mjs [OUTDIR]
// Default OUTDIR is src/puzzlefs/format/schema; test/puzzlefs/schema.test.ts
// regenerates into a temp dir and fails if the committed files differ.
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "src/puzzlefs/format/schema"));
const bin = join(root, "node_modules/.bin/capnp-es");
try {
  execFileSync(bin, ["schemas/metadata.capnp", `-ots:${out}`, "--src-prefix=schemas"], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
  });
} catch (e) {
  console.error("gen-capnp: capnp-es failed; is the `capnp` binary installed? (bash scripts/install-deps.sh)");
  process.exit(1);
}
