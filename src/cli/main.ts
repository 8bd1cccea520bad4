/**
 * The `puzzlefs` command. Each subcommand lives in its own module and
 * registers itself on the program; this file owns parsing, the error →
 * exit-status mapping (README "Exit status") and nothing else.
 */
import { Command, CommanderError } from "commander";
import { ExitCode, PfsError, exitCodeFor } from "../common/errors.ts";
import { registerBuild } from "./build.ts";
import { registerCat } from "./cat.ts";
import { openExtExports, registerExport } from "./export.ts";
import { registerExtract } from "./extract.ts";
import { registerInfo } from "./info.ts";
import { registerLs } from "./ls.ts";
import { registerPush } from "./push.ts";
import { registerServe } from "./serve.ts";

export function buildProgram(): Command {
  const program = new Command("puzzlefs")
    .description("Build, inspect and serve PuzzleFS images; serve them to Linux as a read-only ext4 disk over NBD.")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerBuild(program);
  registerExtract(program);
  registerInfo(program);
  registerLs(program);
  registerCat(program);
  registerPush(program);
  registerExport(program);
  registerServe(program, { openImage: openExtExports });
  return program;
}

/** Run the CLI; resolves to the process exit status. Never throws. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return ExitCode.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    reportError(e);
    return exitCodeFor(e);
  }
}

export function reportError(e: unknown): void {
  if (e instanceof PfsError) {
    process.stderr.write(`puzzlefs: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  } else {
    process.stderr.write(`puzzlefs: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
}
