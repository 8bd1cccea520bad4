/**
 * Boot the test guest under QEMU TCG (no KVM here) and collect what its /init
 * prints on the serial console. Flags from qemu-nbd-recipe.md §C/§D:
 * - `-no-reboot` + `poweroff -f` in the guest: QEMU exits 0 when done;
 *   `panic=-1` turns a guest panic into an exit too (then RESULT is missing).
 * - Guest kernel NBD client: slirp with `restrict=on` and a `cmd:` guestfwd
 *   running `socat STDIO TCP:127.0.0.1:PORT`, one socat per guest
 *   connection, so `-C 2` and `nbd-client -l` then attach both work. The
 *   guest reaches the server as 10.0.2.100:10809; nothing else leaves QEMU.
 * - QEMU's own NBD client: `-blockdev driver=nbd,...,read-only=on` behind a
 *   virtio-blk device (read-only is required for a read-only export), or
 *   the short form the README and `puzzlefs serve` print:
 *   `-drive file=nbd://127.0.0.1:PORT/NAME,format=raw,if=virtio,readonly=on`.
 */
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import type { GuestAssets } from "./guest-assets.ts";
import { exited, sleep, startChild } from "./proc.ts";

/** An export attached as a virtio disk through QEMU's NBD block driver. */
export interface NbdDisk {
  port: number;
  export: string;
  /** Seconds QEMU holds requests while it reconnects a dropped connection (QEMU `reconnect-delay`). */
  reconnectDelay?: number;
  /** "drive": the `-drive file=nbd://…` form (no reconnectDelay); default "blockdev". */
  form?: "blockdev" | "drive";
}

export interface BootOptions {
  assets: GuestAssets;
  /** Guest parameters, passed as `lab.NAME=VALUE` on the kernel command line (see guest/init.sh). */
  params: Record<string, string | number>;
  /** Host port of the NBD server the guest reaches as 10.0.2.100:10809 (guest nbd-client mode). */
  guestfwdPort?: number;
  disks?: NbdDisk[];
  /** Console log file. */
  log: string;
  timeoutMs: number;
  smp?: number;
  /** Called with each complete console line while the guest runs. */
  onLine?: (line: string) => void | Promise<void>;
}

export interface BootResult {
  code: number | null;
  timedOut: boolean;
  seconds: number;
  /** Console lines, `\r` stripped, bytes kept 1:1 as latin1 code units. */
  lines: string[];
  /** The RESULT line's words after "RESULT", or undefined if the guest never got there. */
  result: string | undefined;
  stderr: string;
}

export function qemuArgs(o: BootOptions): string[] {
  const append = [
    "console=ttyS0",
    "quiet",
    "panic=-1",
    ...Object.entries(o.params).map(([k, v]) => `lab.${k}=${v}`),
  ].join(" ");
  const args = [
    ...["-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", String(o.smp ?? 1)],
    ...["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"],
    ...["-serial", `file:${o.log}`, "-kernel", o.assets.kernel, "-initrd", o.assets.initrd, "-append", append],
  ];
  if (o.guestfwdPort !== undefined) {
    const fwd = `guestfwd=tcp:10.0.2.100:10809-cmd:socat STDIO TCP:127.0.0.1:${o.guestfwdPort}`;
    args.push("-netdev", `user,id=n0,restrict=on,${fwd}`, "-device", "virtio-net-pci,netdev=n0,romfile=");
  }
  (o.disks ?? []).forEach((d, i) => {
    if (d.form === "drive") {
      if (d.reconnectDelay !== undefined) throw new Error("reconnect-delay needs the -blockdev form");
      const uri = `nbd://127.0.0.1:${d.port}/${encodeURIComponent(d.export)}`;
      args.push("-drive", `file=${uri},format=raw,if=virtio,readonly=on`);
      return;
    }
    const opts = [
      "driver=nbd",
      `node-name=nbd${i}`,
      "server.type=inet",
      "server.host=127.0.0.1",
      `server.port=${d.port}`,
      `export=${d.export}`,
      "read-only=on",
      ...(d.reconnectDelay === undefined ? [] : [`reconnect-delay=${d.reconnectDelay}`]),
    ];
    args.push("-blockdev", opts.join(","), "-device", `virtio-blk-pci,drive=nbd${i}`);
  });
  return args;
}

/** Split console bytes into lines (latin1, so non-UTF-8 file names survive), dropping `\r`. */
export function consoleLines(bytes: Buffer): string[] {
  return bytes
    .toString("latin1")
    .split("\n")
    .map((l) => l.replace(/\r+$/, ""));
}

/** Boot the guest and wait for it to power off (or kill it at the timeout). */
export async function bootGuest(o: BootOptions): Promise<BootResult> {
  writeFileSync(o.log, "");
  const t0 = performance.now();
  const child = startChild("qemu-system-x86_64", qemuArgs(o));
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, o.timeoutMs);

  // Tail the console file so callers can react to lines (e.g. READY).
  const fd = openSync(o.log, "r");
  let pos = 0;
  let partial = "";
  const pump = async (): Promise<void> => {
    const size = statSync(o.log).size;
    if (size <= pos) return;
    const buf = Buffer.alloc(size - pos);
    const n = readSync(fd, buf, 0, buf.length, pos);
    pos += n;
    const text = partial + buf.subarray(0, n).toString("latin1");
    const parts = text.split("\n");
    partial = parts.pop()!;
    if (o.onLine) for (const l of parts) await o.onLine(l.replace(/\r+$/, ""));
  };
  try {
    let done = false;
    const exit = exited(child).then(() => (done = true));
    while (!done) {
      await Promise.race([exit, sleep(50)]);
      await pump();
    }
    await pump();
  } finally {
    clearTimeout(timer);
    closeSync(fd);
  }
  const lines = consoleLines(readFileSync(o.log));
  const resultLine = lines.find((l) => l.startsWith("RESULT "));
  return {
    code: child.exitCode,
    timedOut,
    seconds: (performance.now() - t0) / 1000,
    lines,
    result: resultLine?.slice("RESULT ".length),
    stderr,
  };
}

/** The console log without the per-file report lines, for failure messages. */
export function consoleSummary(lines: readonly string[], max = 300): string {
  const keep = lines.filter((l) => !/^[SHL] \d+ /.test(l));
  const cut = keep.length > max ? [`... ${keep.length - max} lines omitted ...`, ...keep.slice(-max)] : keep;
  return cut.join("\n");
}
