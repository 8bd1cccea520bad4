/**
 * The NBD server under test, behind one interface so every scenario runs
 * unchanged against `puzzlefs serve` or against nbdkit (the stand-in and
 * reference server). Servers listen on 127.0.0.1 only, on a port picked free;
 * a restart reuses the port so clients can reconnect to the same address.
 */
import { mkdirSync, readFileSync, existsSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { freePort, run, stopPidfile, trackPidfile, pidAlive } from "./proc.ts";

/** One export: a raw disk image file, or a tag of a PuzzleFS image directory. */
export interface Export {
  name: string;
  image?: string;
  oci?: { dir: string; tag: string };
}

export interface ServerUnderTest {
  readonly kind: string;
  /** TCP port on 127.0.0.1; fixed by the first start(). */
  readonly port: number;
  start(exports: readonly Export[]): Promise<void>;
  /** Stop the server; `kill` sends SIGKILL (a crash) instead of SIGTERM. */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** Start again with the same exports on the same port. */
  restart(): Promise<void>;
  /** NBD connections that reached transmission since the first start (all restarts). */
  connections(): number;
  /** The server's log, for failure messages. */
  log(): string;
}

/**
 * nbdkit serving every export as a file: `nbdkit -r file dir=DIR` serves each
 * file in DIR under its own name (symlinks followed). Run as a daemon with a
 * pidfile: it forks only once it listens, so no readiness poll is needed, and
 * (recipe §A) a foreground nbdkit started from a script was sometimes killed.
 * The log filter records one "Connect" line per connection.
 */
export class NbdkitServer implements ServerUnderTest {
  readonly kind = "nbdkit";
  port = 0;
  private exports: readonly Export[] = [];
  private readonly pidfile: string;
  private readonly logfile: string;
  private readonly dir: string;

  constructor(private readonly work: string) {
    mkdirSync(work, { recursive: true });
    this.pidfile = join(work, "nbdkit.pid");
    this.logfile = join(work, "nbdkit.log");
    this.dir = join(work, "nbdkit-exports");
    rmSync(this.logfile, { force: true });
  }

  async start(exports: readonly Export[]): Promise<void> {
    this.exports = exports;
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir);
    for (const e of exports) {
      if (!e.image) throw new Error(`nbdkit stand-in: export ${e.name} has no image file`);
      symlinkSync(e.image, join(this.dir, e.name));
    }
    if (this.port === 0) this.port = await freePort();
    rmSync(this.pidfile, { force: true });
    trackPidfile(this.pidfile);
    await run("nbdkit", [
      "-r",
      "--ip-addr",
      "127.0.0.1",
      "-p",
      String(this.port),
      "-P",
      this.pidfile,
      "--filter=log",
      "file",
      `dir=${this.dir}`,
      `logfile=${this.logfile}`,
      "logappend=true",
    ]);
  }

  async stop(opts: { kill?: boolean } = {}): Promise<void> {
    if (!existsSync(this.pidfile)) return;
    if (opts.kill) {
      const pid = Number(readFileSync(this.pidfile, "utf8"));
      if (pidAlive(pid)) process.kill(pid, "SIGKILL");
    }
    await stopPidfile(this.pidfile);
    rmSync(this.pidfile, { force: true });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start(this.exports);
  }

  connections(): number {
    return (this.log().match(/ Connect export=/g) ?? []).length;
  }

  log(): string {
    return existsSync(this.logfile) ? readFileSync(this.logfile, "utf8") : "";
  }
}
