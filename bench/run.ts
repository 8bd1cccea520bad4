/**
 * `npm run bench -- <name> [args]`: runs bench/<name>.ts with [args] as its
 * process.argv[2…] (so each bench also runs on its own with
 * `node --import tsx bench/<name>.ts [args]`).
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const name = process.argv[2];
const benches = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3));
if (!name || !/^[a-z0-9-]+$/.test(name) || !existsSync(join(here, `${name}.ts`))) {
  process.stderr.write(`usage: npm run bench -- <name> [args]\n  benches: ${benches.join(", ")}\n`);
  process.exit(1);
}
process.argv.splice(2, 1);
await import(pathToFileURL(join(here, `${name}.ts`)).href);
