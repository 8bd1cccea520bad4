/**
 * Run the CLI: in-process through main() with stdout/stderr captured, or as
 * a real child process (`node --import tsx`) for exit statuses and byte-exact
 * stdout.
 */
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { vi } from "vitest";
import { main } from "../../src/cli/main.ts";

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export async function runCli(args: string[]): Promise<CliResult> {
  const out: Buffer[] = [];
  const err: string[] = [];
  const toBuf = (c: unknown) => (typeof c === "string" ? Buffer.from(c) : Buffer.from(c as Uint8Array));
  const o = vi.spyOn(process.stdout, "write").mockImplementation((c: unknown) => (out.push(toBuf(c)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation((c: unknown) => (err.push(toBuf(c).toString()), true));
  try {
    const code = await main(args);
    return { code, stdout: Buffer.concat(out), stderr: err.join("") };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const ENTRY = resolve(import.meta.dirname, "cli-entry.ts");

export function spawnCli(args: string[]): CliResult {
  const r = spawnSync(process.execPath, ["--import", "tsx", ENTRY, ...args], { maxBuffer: 1 << 26, cwd: resolve(import.meta.dirname, "../..") });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** spawnCli without blocking the event loop (needed when the test process also runs the server the CLI talks to). */
export function spawnCliAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolveP, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", ENTRY, ...args], { cwd: resolve(import.meta.dirname, "../.."), env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) => resolveP({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}
