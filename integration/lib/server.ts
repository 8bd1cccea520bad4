/**
 * The NBD server under test, behind one interface so every scenario runs
 * unchanged against `puzzlefs serve` or against nbdkit (the stand-in and
 * reference server). Servers listen on 127.0.0.1 only, on a port picked free;
 * a restart reuses the port so clients can reconnect to the same address.
 */
import type { ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, existsSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./paths.ts";
import { exited, freePort, run, startChild, stopChild, stopPidfile, trackPidfile, pidAlive } from "./proc.ts";

/** One export: a raw disk image file, or a tag of a PuzzleFS image directory. */
export interface Export {
  name: string;
  image?: string;
  oci?: { dir: string; tag: string };
}

/**
 * TLS for a server under test: PEM files of a server certificate and key and
 * the CA that signs client certificates; FORCEDTLS (`require`), clients must
 * present a certificate from `ca` when verifyPeer.
 */
export interface ServerTlsFiles {
  /** A directory holding ca-cert.pem, server-cert.pem, server-key.pem (nbdkit's layout). */
  dir: string;
  verifyPeer: boolean;
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

  constructor(
    private readonly work: string,
    private readonly tls?: ServerTlsFiles,
  ) {
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
      ...(this.tls ? ["--tls=require", `--tls-certificates=${this.tls.dir}`, ...(this.tls.verifyPeer ? ["--tls-verify-peer"] : [])] : []),
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

/**
 * `puzzlefs serve`, the product: `node bin/puzzlefs.js serve [OCI_DIR]
 * [--tag T ...] [--raw NAME=FILE ...] --listen 127.0.0.1:PORT` (needs
 * `npm run build`). The first start listens on port 0 and reads the port from
 * the "listening on" line it prints when ready; restarts reuse it. The server
 * logs one line per connection when the connection ends (`conn#N CLIENT
 * export "NAME": ...`), which is what connections() counts; a SIGKILLed
 * server never writes the lines of its open connections.
 */
export class PuzzlefsServer implements ServerUnderTest {
  readonly kind = "puzzlefs";
  port = 0;
  private exports: readonly Export[] = [];
  private child: ChildProcess | undefined;
  private readonly logfile: string;
  private text = "";

  constructor(
    work: string,
    private readonly tls?: ServerTlsFiles,
  ) {
    mkdirSync(work, { recursive: true });
    this.logfile = join(work, "puzzlefs-serve.log");
    rmSync(this.logfile, { force: true });
  }

  async start(exports: readonly Export[]): Promise<void> {
    this.exports = exports;
    const dirs = [...new Set(exports.flatMap((e) => (e.oci ? [e.oci.dir] : [])))];
    if (dirs.length > 1) throw new Error(`puzzlefs serve takes one image directory, got ${dirs.join(", ")}`);
    const args = [join(REPO, "bin/puzzlefs.js"), "serve", ...dirs];
    for (const e of exports) {
      if (e.oci) {
        if (e.oci.tag !== e.name) throw new Error(`export ${e.name}: a tag is served under its own name (${e.oci.tag})`);
        args.push("--tag", e.oci.tag);
      } else if (e.image) args.push("--raw", `${e.name}=${e.image}`);
      else throw new Error(`export ${e.name}: neither an image file nor a tag`);
    }
    args.push("--listen", `127.0.0.1:${this.port}`);
    if (this.tls) {
      const f = (n: string) => join(this.tls!.dir, n);
      args.push("--tls", "require", "--tls-cert", f("server-cert.pem"), "--tls-key", f("server-key.pem"));
      if (this.tls.verifyPeer) args.push("--tls-ca", f("ca-cert.pem"), "--tls-verify-peer");
    }
    const from = this.text.length; // a restart must not see the previous "listening on"
    const child = startChild(process.execPath, args, { cwd: REPO });
    this.child = child;
    const append = (b: Buffer): void => {
      this.text += b.toString();
      appendFileSync(this.logfile, b);
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    const ready = new Promise<number>((resolve, reject) => {
      const onData = (): void => {
        const m = /puzzlefs serve: listening on 127\.0\.0\.1:(\d+)/.exec(this.text.slice(from));
        if (m) resolve(Number(m[1]));
      };
      child.stdout!.on("data", onData);
      void exited(child).then(() => reject(new Error(`puzzlefs serve exited ${child.exitCode}:\n${this.text}`)));
    });
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`puzzlefs serve not ready after 120 s:\n${this.text}`)), 120_000).unref(),
    );
    this.port = await Promise.race([ready, timeout]);
  }

  async stop(opts: { kill?: boolean } = {}): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (opts.kill) child.kill("SIGKILL");
    await stopChild(child, 15_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start(this.exports);
  }

  connections(): number {
    return (this.text.match(/ conn#\d+ \S+ export "/g) ?? []).length;
  }

  log(): string {
    return this.text;
  }
}
