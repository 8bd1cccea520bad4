/**
 * Benchmark dispatcher: `npm run bench -- NAME [ARGS...]` runs bench/NAME.ts,
 * whose default export is `main(args: string[]): Promise<void>`.
 */
import { readdirSync } from "node:fs";

const [name, ...args] = process.argv.slice(2);
const known = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "puzzlefs.ts"].includes(f) && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
if (!name || !known.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [ARGS...]\n  benchmarks: ${known.join(", ")}\n`);
  process.exit(1);
}
const mod = (await import(`./${name}.ts`)) as { default: (args: string[]) => Promise<void> };
await mod.default(args);
