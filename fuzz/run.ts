/**
 * `npm run fuzz -- <target> [seconds] [--corpus DIR] [--jobs N] [-- libFuzzer flags...]`
 *
 * Coverage-guided fuzzing with Jazzer.js (libFuzzer in-process) of one target
 * in fuzz/targets/ for a set time (default 60 s). The committed seeds
 * (fuzz/seeds/<target>/) are read; new interesting inputs go to the working
 * corpus (default .cache/fuzz/<target>/corpus); a crashing input is written to
 * .cache/fuzz/<target>/crash-* and should become a regression fixture in
 * test/fixtures/fuzz/<target>/ (test/fuzz/regressions.test.ts replays them).
 *
 * Only src/ is instrumented. Jazzer.js's prebuilt addon needs a newer glibc
 * than Debian 12 has: fuzz/jazzer-compat.cjs loads a patched copy.
 * Prints one summary line: executions, seconds, corpus size, coverage.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dirname, "..");
export const TARGETS: Record<string, { sync: boolean; maxLen: number }> = {
  session: { sync: true, maxLen: 4096 },
  image: { sync: false, maxLen: 64 * 1024 },
};

export interface FuzzResult {
  code: number;
  executions: number;
  seconds: number;
  corpusFiles: number;
  corpusBytes: number;
  cov: number;
  output: string;
}

function dirSize(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const f of readdirSync(dir)) {
    files++;
    bytes += statSync(join(dir, f)).size;
  }
  return { files, bytes };
}

export async function runFuzz(target: string, seconds: number, opts: { corpus?: string; extra?: string[]; quiet?: boolean } = {}): Promise<FuzzResult> {
  const t = TARGETS[target];
  if (!t) throw new Error(`unknown fuzz target "${target}"; targets: ${Object.keys(TARGETS).join(", ")}`);
  const work = join(REPO, ".cache", "fuzz", target);
  const corpus = opts.corpus ?? join(work, "corpus");
  mkdirSync(corpus, { recursive: true });
  mkdirSync(work, { recursive: true });
  // Jazzer imports its target by a .js/.mjs path: a one-line wrapper around the .ts module.
  const wrapper = join(work, `${target}.mjs`);
  writeFileSync(wrapper, `export { fuzz } from ${JSON.stringify(join(REPO, "fuzz", "targets", `${target}.ts`))};\n`);
  const jazzer = createRequire(import.meta.url).resolve("@jazzer.js/core/dist/cli.js");
  const args = [
    "--import",
    "tsx",
    "-r",
    join(REPO, "fuzz", "jazzer-compat.cjs"),
    jazzer,
    wrapper,
    corpus,
    join(REPO, "fuzz", "seeds", target),
    "-i",
    `${join(REPO, "src")}/`,
    "--timeout=10000",
    ...(t.sync ? ["--sync"] : []),
    "--",
    `-max_total_time=${seconds}`,
    `-max_len=${t.maxLen}`,
    `-artifact_prefix=${work}/`,
    "-print_final_stats=1",
    ...(opts.extra ?? []),
  ];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const onData = (b: Buffer) => {
    output += b.toString();
    if (!opts.quiet) process.stderr.write(b);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const code = await new Promise<number>((r) => child.on("close", (c, sig) => r(c ?? (sig ? 128 : 1))));
  const done = /Done (\d+) runs in (\d+) second/.exec(output);
  const stat = /stat::number_of_executed_units: (\d+)/.exec(output);
  const covs = [...output.matchAll(/ cov: (\d+) /g)];
  const size = dirSize(corpus);
  return {
    code,
    executions: Number(done?.[1] ?? stat?.[1] ?? 0),
    seconds: Number(done?.[2] ?? seconds),
    corpusFiles: size.files,
    corpusBytes: size.bytes,
    cov: Number(covs.at(-1)?.[1] ?? 0),
    output,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf("--");
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const ci = own.indexOf("--corpus");
  const corpus = ci >= 0 ? own.splice(ci, 2)[1] : undefined;
  const [target, secs] = own;
  if (!target || !TARGETS[target]) {
    process.stderr.write(`usage: npm run fuzz -- <${Object.keys(TARGETS).join("|")}> [seconds] [--corpus DIR] [-- libFuzzer flags]\n`);
    process.exit(1);
  }
  const r = await runFuzz(target, Number(secs ?? 60), { corpus, extra });
  process.stdout.write(
    `fuzz ${target}: ${r.executions} executions in ${r.seconds} s, corpus ${r.corpusFiles} inputs (${r.corpusBytes} bytes), cov ${r.cov}, exit ${r.code}${r.code === 0 ? "" : " (finding: see .cache/fuzz/" + target + "/crash-*)"}\n`,
  );
  process.exit(r.code);
}
