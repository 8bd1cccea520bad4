/**
 * Process helpers for the real-peer harness: run a command to completion with
 * a timeout, start long-lived children that are always stopped again, find a
 * free loopback port, wait for a condition.
 *
 * Every child started through `startChild` is registered; `stopAllChildren`
 * (called from each test file's afterAll) kills whatever is still running, so
 * a failing scenario never leaves QEMU, nbdfuse or a server behind.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { cacheDir } from "./paths.ts";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) after this many ms; default 10 minutes. */
  timeoutMs?: number;
  input?: string | Buffer;
  /** Throw unless the exit status is 0 (default true). */
  check?: boolean;
  /** How stdout/stderr are decoded (default utf8; latin1 keeps every byte). */
  encoding?: BufferEncoding;
}

/** Run `cmd args...` to completion, collecting output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 600_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: cannot start: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const r: RunResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString(opts.encoding ?? "utf8"),
        stderr: Buffer.concat(err).toString(opts.encoding ?? "utf8"),
        ms: performance.now() - t0,
      };
      if ((opts.check ?? true) && code !== 0) {
        reject(
          new Error(
            `${cmd} ${args.join(" ")}: exit ${code ?? signal}\n${r.stderr.slice(-4000)}${r.stdout.slice(-2000)}`,
          ),
        );
      } else resolve(r);
    });
  });
}

const children = new Set<ChildProcess>();

/** Start a long-lived child; it is killed by stopAllChildren() if still alive. */
export function startChild(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(child);
  child.on("exit", () => children.delete(child));
  child.on("error", () => children.delete(child));
  return child;
}

/** Resolve when the child has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited(child);
  clearTimeout(timer);
}

const pidfiles = new Set<string>();

/** Remember a daemon's pidfile so stopAllChildren() can stop it too. */
export function trackPidfile(path: string): void {
  pidfiles.add(path);
}

/** true while `pid` runs (a zombie, dead but not yet reaped by its parent, counts as gone). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Stop the daemon whose pid is in `pidfile` (SIGTERM, then SIGKILL) and wait until it is gone. */
export async function stopPidfile(pidfile: string, graceMs = 3000): Promise<void> {
  pidfiles.delete(pidfile);
  if (!existsSync(pidfile)) return;
  const pid = Number(readFileSync(pidfile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  if (!pidAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) await sleep(20);
  if (pidAlive(pid)) {
    process.kill(pid, "SIGKILL");
    while (pidAlive(pid)) await sleep(20);
  }
}

/** Kill every child and daemon this process started and that is still running. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, 1000)));
  await Promise.all([...pidfiles].map((p) => stopPidfile(p, 1000)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `cond` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  cond: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** true when something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Wall time of `fn`, in seconds with one decimal, printed under `label`. */
export async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    recordTiming(label, (performance.now() - t0) / 1000);
  }
}

/**
 * Timings are printed as they happen (`TIMING <seconds> s <label>`) and
 * appended to .cache/run/timings.tsv, from which global teardown prints the
 * table for the whole run (test files run in separate processes).
 */
export function recordTiming(label: string, seconds: number): void {
  process.stdout.write(`TIMING ${seconds.toFixed(1)} s  ${label}\n`);
  appendFileSync(join(cacheDir("run"), "timings.tsv"), `${seconds.toFixed(1)}\t${label}\n`);
}
