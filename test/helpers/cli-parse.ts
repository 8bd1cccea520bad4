/**
 * Check a documented command line against the real CLI without running it:
 * the program from buildProgram(), every action replaced by one that records
 * what commander parsed. Unknown options, missing or extra operands and bad
 * option values throw (CommanderError), exactly as `puzzlefs` would reject
 * them. Plus a small shell word splitter for command lines taken from docs.
 */
import type { Command } from "commander";
import { buildProgram } from "../../src/cli/main.ts";
import { validate, type ServeOptions } from "../../src/cli/serve.ts";

export interface ParsedCommand {
  command: string;
  operands: string[];
  opts: Record<string, unknown>;
}

export async function parseCommandLine(argv: string[]): Promise<ParsedCommand> {
  const program = buildProgram();
  let got: ParsedCommand | undefined;
  const quiet = (c: Command) => c.configureOutput({ writeOut: () => {}, writeErr: () => {} }).exitOverride();
  quiet(program);
  for (const c of program.commands) {
    quiet(c);
    c.allowExcessArguments(false);
    c.action((...a: unknown[]) => {
      const cmd = a.at(-1) as Command;
      got = { command: cmd.name(), operands: a.slice(0, -2).filter((x): x is string => typeof x === "string"), opts: cmd.opts() };
    });
  }
  await program.parseAsync(argv, { from: "user" });
  if (!got) throw new Error(`${argv.join(" ")}: no command ran`);
  return got;
}

/** A parsed `serve` command line through serve's own validation (what runs before it listens). */
export function validateServe(p: ParsedCommand): ServeOptions {
  if (p.command !== "serve") throw new Error(`not a serve command: ${p.command}`);
  return validate(p.operands[0], p.opts as unknown as Parameters<typeof validate>[1]);
}

/**
 * Split one shell command line into words: single and double quotes, a
 * backslash escape, `#` comments, and `&&`, `||`, `;`, `|`, `&` separating
 * commands. Returns the commands, each a list of words. Enough for README
 * examples; no expansions (`$PWD` stays as written).
 */
export function shellCommands(line: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length) out.push(words);
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const j = line.indexOf(c, i + 1);
      if (j < 0) throw new Error(`unterminated ${c} in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, j);
      i = j;
    } else if (c === "\\" && i + 1 < line.length) {
      word = (word ?? "") + line[++i];
    } else if (c === "#" && word === null) {
      break;
    } else if (c === " " || c === "\t") {
      endWord();
    } else if ("&|;".includes(c)) {
      if (line[i + 1] === c) i++;
      endCommand();
    } else {
      word = (word ?? "") + c;
    }
  }
  endCommand();
  return out;
}
