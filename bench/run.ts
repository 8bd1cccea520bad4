/**
 * Benchmark dispatcher: `npm run bench -- NAME [ARGS...]` runs bench/NAME.ts.
 * The script sees process.argv as if started directly (`node bench/NAME.ts
 * ARGS...`); if it has a default export, that is called as `main(ARGS)`.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";

const [name, ...args] = process.argv.slice(2);
const known = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "puzzlefs.ts"].includes(f) && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
if (!name || !known.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [ARGS...]\n  benchmarks: ${known.join(", ")}\n`);
  process.exit(1);
}
const file = join(import.meta.dirname, `${name}.ts`);
process.argv = [process.argv[0]!, file, ...args];
const mod = (await import(file)) as { default?: (args: string[]) => Promise<void> };
if (typeof mod.default === "function") await mod.default(args);
