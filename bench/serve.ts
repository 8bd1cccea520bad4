/**
 * `npm run bench -- serve [--size MiB] [--runs N] [--lat-count N] [--cache MiB]`
 *
 * Four servers side by side, all serving the same disk on 127.0.0.1:
 *   nbdkit file            the reference: `puzzlefs export` of the plain tag, as a file
 *   puzzlefs serve --raw   the same file
 *   synthesized (plain)    `puzzlefs serve OCI --tag plain`: the ext image made on the fly
 *   synthesized (-c)       `puzzlefs serve OCI --tag zstd`: the same files, chunks zstd-seekable
 * The images are `puzzlefs build` (and `build -c`) of a tree of SIZE MiB of
 * synthetic, text-like files (integration/lib/synth-image.ts writeSynthTree).
 *   - sequential throughput: `nbdcopy URI null:` (default: up to 4 connections, multi-conn)
 *     and `nbdcopy -C 1`, MB/s, median of N runs (runs alternate between servers);
 *   - server CPU (user + system) seconds per GiB copied, which stays meaningful
 *     when other work on the machine makes wall-clock throughput noisy;
 *   - 4 KiB random-read latency at queue depth 1 (libnbd Python binding), µs,
 *     after the copies (the chunk cache is as warm as its cap allows).
 * Targets (issue 5): --raw ≥ 0.9× nbdkit throughput; synthesized uncompressed
 * ≥ 0.7×; 4 KiB QD1 latency ≤ 2× nbdkit. The machine's load average is printed.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { writeSynthTree } from "../integration/lib/synth-image.ts";

const MiB = 1 << 20;

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 * MiB }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

interface Server {
  name: string;
  uri: string;
  pid: number;
  stop(): Promise<void>;
}

/** User + system CPU seconds a process has used so far (/proc/PID/stat fields 14, 15). */
async function cpuSeconds(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in clock ticks (USER_HZ = 100)
}

async function startNbdkit(img: string, dir: string): Promise<Server> {
  const port = await freePort();
  const pidfile = join(dir, "nbdkit.pid");
  // Without -f nbdkit daemonizes after it listens: no readiness poll needed.
  const r = await sh("nbdkit", ["-r", "--ip-addr", "127.0.0.1", "-p", String(port), "-P", pidfile, "file", img]);
  if (r.code !== 0) throw new Error(`nbdkit failed: ${r.stderr}`);
  // The daemon writes its pidfile after the parent has returned: wait for it.
  let pid = NaN;
  for (let i = 0; i < 500 && !(pid > 0); i++) {
    pid = Number((await readFile(pidfile, "utf8").catch(() => "")).trim() || NaN);
    if (!(pid > 0)) await new Promise((res) => setTimeout(res, 10));
  }
  if (!(pid > 0)) throw new Error(`nbdkit wrote no pidfile ${pidfile}`);
  return {
    name: "nbdkit file",
    uri: `nbd://127.0.0.1:${port}/`,
    pid,
    stop: async () => {
      process.kill(pid, "SIGTERM");
    },
  };
}

async function startPuzzlefs(name: string, serveArgs: string[]): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "puzzlefs.ts"), "serve", ...serveArgs, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, SOURCE_DATE_EPOCH: "0" },
  });
  let out = "";
  const uri = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /uri: +(nbd:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (c) => reject(new Error(`puzzlefs serve exited ${c}: ${out}`)));
  });
  const exited = new Promise((r) => child.on("exit", r));
  return {
    name,
    uri,
    pid: child.pid!,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function copySeconds(uri: string, extra: string[]): Promise<number> {
  const t = process.hrtime.bigint();
  const r = await sh("nbdcopy", [...extra, uri, "null:"]);
  if (r.code !== 0) throw new Error(`nbdcopy ${uri}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export default async function main(args: string[]): Promise<void> {
  const dataBytes = arg(args, "--size", 512) * MiB;
  const runs = arg(args, "--runs", 5);
  const latCount = arg(args, "--lat-count", 3000);
  const cacheMiB = arg(args, "--cache", 256);
  const dir = await mkdtemp(join(tmpdir(), "pfs-bench-serve-"));
  const oci = join(dir, "oci");
  const img = join(dir, "plain.img");
  const servers: Server[] = [];
  const load0 = await readFile("/proc/loadavg", "utf8");
  try {
    process.stderr.write(`bench serve: ${dataBytes / MiB} MiB of file data, plain and -c images, ${runs} runs\n`);
    const t0 = performance.now();
    const tree = join(dir, "rootfs");
    await writeSynthTree(tree, { bytes: dataBytes, files: 128, seed: 5 });
    const cli = (...a: string[]) => sh(process.execPath, ["--import", "tsx", join(import.meta.dirname, "puzzlefs.ts"), ...a]);
    for (const [tag, flags] of [["plain", []], ["zstd", ["-c"]]] as const) {
      const b = await cli("build", ...flags, tree, `${oci}:${tag}`);
      if (b.code !== 0) throw new Error(`puzzlefs build ${flags.join(" ")}: ${b.stderr}`);
    }
    await rm(tree, { recursive: true, force: true });
    const zstdBytes = Number((await cli("info", "--json", `${oci}:zstd`)).stdout.match(/"storedBytes": (\d+)/)?.[1] ?? NaN);
    const e = await cli("export", `${oci}:plain`, img, "--no-progress");
    if (e.code !== 0) throw new Error(`puzzlefs export: ${e.stderr}`);
    const size = (await stat(img)).size;
    process.stderr.write(`bench serve: images built and exported in ${((performance.now() - t0) / 1000).toFixed(1)} s (disk ${size} bytes; -c stores ${(zstdBytes / MiB).toFixed(0)} MiB)\n`);
    await sh("cat", [img]).catch(() => {}); // warm the page cache for nbdkit and --raw alike
    const cache = ["--cache-size", `${cacheMiB}M`];
    servers.push(
      await startNbdkit(img, dir),
      await startPuzzlefs("puzzlefs serve --raw", ["--raw", `disk=${img}`]),
      await startPuzzlefs("synthesized (plain)", [oci, "--tag", "plain", ...cache]),
      await startPuzzlefs("synthesized (-c)", [oci, "--tag", "zstd", ...cache]),
    );

    const modes: [string, string[]][] = [["nbdcopy (multi-conn)", []], ["nbdcopy -C 1", ["--connections=1"]]];
    const mbps = new Map<string, number>();
    const cpu = new Map<string, number>(servers.map((s) => [s.name, 0]));
    for (const [mode, extra] of modes) {
      const times = new Map<string, number[]>(servers.map((s) => [s.name, []]));
      for (const s of servers.slice(1)) await copySeconds(s.uri, extra); // warm-up (JIT)
      for (let i = 0; i < runs; i++) {
        for (const s of servers) {
          const c0 = await cpuSeconds(s.pid);
          times.get(s.name)!.push(await copySeconds(s.uri, extra));
          cpu.set(s.name, cpu.get(s.name)! + (await cpuSeconds(s.pid)) - c0);
        }
      }
      for (const s of servers) mbps.set(`${mode}|${s.name}`, size / 1e6 / median(times.get(s.name)!));
    }
    const gibCopied = (modes.length * runs * size) / 2 ** 30;
    const lat = new Map<string, { mean: number; p50: number; p99: number }>();
    for (const s of servers) {
      const r = await sh("/usr/bin/python3", [join(import.meta.dirname, "_latency.py"), s.uri, String(size), String(latCount), "42"]);
      if (r.code !== 0) throw new Error(`latency ${s.name}: ${r.stderr}`);
      lat.set(s.name, JSON.parse(r.stdout));
    }
    const load1 = await readFile("/proc/loadavg", "utf8");

    const ref = servers[0]!.name;
    const lines = [`\nserve benchmark: ${dataBytes / MiB} MiB of file data (disk ${(size / MiB).toFixed(0)} MiB), median of ${runs} runs, ${latCount} latency samples (µs), chunk cache ${cacheMiB} MiB`];
    lines.push(["server".padEnd(24), ...modes.map(([m]) => `${m} MB/s`.padStart(28)), "CPU s/GiB".padStart(16), "4K QD1 p50".padStart(16), "mean".padStart(8), "p99".padStart(8)].join(""));
    const ratio = (name: string, mode: string) => mbps.get(`${mode}|${name}`)! / mbps.get(`${mode}|${ref}`)!;
    for (const s of servers) {
      const l = lat.get(s.name)!;
      const cols = modes.map(([m]) => `${mbps.get(`${m}|${s.name}`)!.toFixed(0)} (${ratio(s.name, m).toFixed(2)}×)`.padStart(28));
      const lr = l.p50 / lat.get(ref)!.p50;
      const c = cpu.get(s.name)! / gibCopied;
      const cr = c / (cpu.get(ref)! / gibCopied);
      lines.push([s.name.padEnd(24), ...cols, `${c.toFixed(2)} (${cr.toFixed(2)}×)`.padStart(16), `${l.p50.toFixed(0)} (${lr.toFixed(2)}×)`.padStart(16), l.mean.toFixed(0).padStart(8), l.p99.toFixed(0).padStart(8)].join(""));
    }
    const m0 = modes[0]![0];
    const verdict = (v: number, ok: boolean) => `${v.toFixed(2)}× ${ok ? "met" : "NOT met"}`;
    const raw = ratio(servers[1]!.name, m0);
    const syn = ratio(servers[2]!.name, m0);
    const latr = Math.max(...servers.slice(1, 3).map((s) => lat.get(s.name)!.p50 / lat.get(ref)!.p50));
    lines.push(
      `targets: --raw ≥ 0.9× nbdkit: ${verdict(raw, raw >= 0.9)}; synthesized plain ≥ 0.7×: ${verdict(syn, syn >= 0.7)}; ` +
        `4K QD1 p50 ≤ 2× nbdkit (worst of --raw, plain): ${verdict(latr, latr <= 2)}`,
    );
    lines.push(`machine: ${cpus().length} CPUs; load average before ${load0.split(" ").slice(0, 3).join(" ")}, after ${load1.split(" ").slice(0, 3).join(" ")}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
