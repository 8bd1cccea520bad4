/**
 * `npm run bench -- <name> [args…]` runs bench/<name>.ts with the remaining
 * arguments in process.argv[2…], and with `globalThis.gc` available (each
 * benchmark measures memory after a full collection).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";

const name = process.argv[2];
const here = import.meta.dirname;
const names = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3));
if (!name || !existsSync(join(here, `${name}.ts`))) {
  process.stderr.write(`usage: npm run bench -- <name> [args…]\n  benchmarks: ${names.join(", ")}\n`);
  process.exit(name ? 1 : 0);
}
if (!(globalThis as { gc?: unknown }).gc) {
  v8.setFlagsFromString("--expose-gc");
  (globalThis as { gc?: unknown }).gc = vm.runInNewContext("gc");
}
process.argv.splice(2, 1);
await import(join(here, `${name}.ts`));
