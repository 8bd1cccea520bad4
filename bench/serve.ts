/**
 * `npm run bench -- serve [--size MiB] [--runs N] [--lat-count N]`
 *
 * The same image bytes served side by side by `nbdkit file` (the reference,
 * daemon mode with a pidfile, per the integration recipe) and by
 * `puzzlefs serve --raw`, both on 127.0.0.1:
 *   - sequential throughput: `nbdcopy URI null:` (default: up to 4 connections, multi-conn)
 *     and `nbdcopy -C 1`, MB/s, median of N runs (runs alternate between servers);
 *   - server CPU (user + system) seconds per GiB copied, which stays meaningful
 *     when other work on the machine makes wall-clock throughput noisy;
 *   - 4 KiB random-read latency at queue depth 1 (libnbd Python binding), µs.
 * Targets (issue 5): --raw ≥ 0.9× nbdkit throughput; 4 KiB QD1 latency ≤ 2× nbdkit.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

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

async function makeImage(path: string, size: number): Promise<void> {
  const f = await open(path, "w");
  const buf = Buffer.alloc(8 * MiB);
  for (let off = 0; off < size; off += buf.length) {
    randomFillSync(buf);
    await f.write(buf, 0, Math.min(buf.length, size - off), off);
  }
  await f.close();
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

async function startPuzzlefs(img: string): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "puzzlefs.ts"), "serve", "--raw", `disk=${img}`, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "ignore"],
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
    name: "puzzlefs serve --raw",
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
  const size = arg(args, "--size", 512) * MiB;
  const runs = arg(args, "--runs", 5);
  const latCount = arg(args, "--lat-count", 3000);
  const dir = await mkdtemp(join(tmpdir(), "pfs-bench-serve-"));
  const img = join(dir, "image.raw");
  const servers: Server[] = [];
  try {
    process.stderr.write(`bench serve: ${size / MiB} MiB random image, ${runs} runs\n`);
    await makeImage(img, size);
    await sh("cat", [img]).catch(() => {}); // warm the page cache for both servers alike
    servers.push(await startNbdkit(img, dir), await startPuzzlefs(img));

    const modes: [string, string[]][] = [["nbdcopy (default, multi-conn)", []], ["nbdcopy -C 1", ["--connections=1"]]];
    const mbps = new Map<string, number>();
    const cpu = new Map<string, number>(servers.map((s) => [s.name, 0]));
    for (const [mode, extra] of modes) {
      const times = new Map<string, number[]>(servers.map((s) => [s.name, []]));
      await copySeconds(servers[1]!.uri, extra); // warm-up (JIT)
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

    const ref = servers[0]!.name;
    const lines = [`\nserve benchmark: ${size / MiB} MiB image, median of ${runs} runs, ${latCount} latency samples (µs)`];
    lines.push(["server".padEnd(24), ...modes.map(([m]) => `${m} MB/s`.padStart(36)), "CPU s/GiB".padStart(16), "4K QD1 p50".padStart(14), "mean".padStart(8), "p99".padStart(8)].join(""));
    for (const s of servers) {
      const l = lat.get(s.name)!;
      const cols = modes.map(([m]) => {
        const v = mbps.get(`${m}|${s.name}`)!;
        const ratio = v / mbps.get(`${m}|${ref}`)!;
        return `${v.toFixed(0)} (${ratio.toFixed(2)}×)`.padStart(36);
      });
      const lr = l.p50 / lat.get(ref)!.p50;
      const c = cpu.get(s.name)! / gibCopied;
      const cr = c / (cpu.get(ref)! / gibCopied);
      lines.push([s.name.padEnd(24), ...cols, `${c.toFixed(2)} (${cr.toFixed(2)}×)`.padStart(16), `${l.p50.toFixed(0)} (${lr.toFixed(2)}×)`.padStart(14), l.mean.toFixed(0).padStart(8), l.p99.toFixed(0).padStart(8)].join(""));
    }
    const ours = servers[1]!.name;
    const tput = mbps.get(`${modes[0]![0]}|${ours}`)! / mbps.get(`${modes[0]![0]}|${ref}`)!;
    const latr = lat.get(ours)!.p50 / lat.get(ref)!.p50;
    lines.push(`targets: --raw throughput ≥ 0.9× nbdkit: ${tput.toFixed(2)}× ${tput >= 0.9 ? "met" : "NOT met"}; 4K QD1 latency ≤ 2× nbdkit: ${latr.toFixed(2)}× ${latr <= 2 ? "met" : "NOT met"}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
