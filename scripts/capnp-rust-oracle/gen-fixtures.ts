/**
 * Regenerates test/fixtures/capnp-rust/*.capnp.zst: the ORACLE_CASES rootfs
 * values (test/helpers/rootfs-gen.ts) encoded by capnp-rust, the library
 * upstream puzzlefs uses. Needs cargo and Debian's librust-capnp-dev.
 *   node --import tsx scripts/capnp-rust-oracle/gen-fixtures.ts
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ORACLE_CASES, genRootfs, toOracleText } from "../../test/helpers/rootfs-gen.ts";

const dir = "scripts/capnp-rust-oracle";
execFileSync("cargo", ["build", "--offline", "--release", "--quiet"], { cwd: dir, stdio: ["ignore", "inherit", "ignore"] });
const out = "test/fixtures/capnp-rust";
mkdirSync(out, { recursive: true });
for (const c of ORACLE_CASES) {
  const bytes = execFileSync(join(dir, "target/release/capnp-rust-oracle"), { input: toOracleText(genRootfs(c)), maxBuffer: 1 << 30 });
  // Stored zstd-compressed (-19): the layouts matter, not the filler bytes.
  writeFileSync(join(out, `case-${c.seed}.capnp.zst`), execFileSync("zstd", ["-19", "-q", "-c"], { input: bytes, maxBuffer: 1 << 30 }));
  process.stdout.write(`case-${c.seed}.capnp ${bytes.length} B, ${bytes.readUInt32LE(0) + 1} segments\n`);
}
