/**
 * Load and faults (issue 7), loopback only, bounded in time and count.
 * `puzzlefs serve` (compiled CLI) serves one synthesized export of a
 * synthetic image; the oracle for every byte is `puzzlefs export` of the
 * same tag. Knobs: LOAD_SECONDS (default 60), LOAD_CONNECTIONS (default 64).
 *
 *  - load: N connections (half structured replies) × 2 random READs in flight
 *    for LOAD_SECONDS: zero errors, zero wrong bytes, p99 latency and peak
 *    server RSS printed; RSS ≤ cache cap + a fixed overhead;
 *  - a chunk blob corrupted on disk after start: reads touching it get EIO and
 *    the log names the blob, other reads are unaffected, and once restored
 *    the same reads succeed; the same for a missing blob;
 *  - the blob directory becomes unreadable (server running as uid 65534, so
 *    chmod 000 really denies it): EIO, then fine again after chmod 755;
 *  - clients killed mid-transfer (sockets reset, nbdcopy SIGKILLed), many
 *    times: the server's open descriptors return to their baseline;
 *  - the server SIGKILLed mid-transfer and restarted on the same port:
 *    clients see the connection drop, never a wrong byte, and the new
 *    server serves correctly.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, closeSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planFor } from "../src/cli/export.ts";
import { RK } from "../src/ext/layout/regions.ts";
import { openImage } from "../src/puzzlefs/reader/image.ts";
import { countDiff, fdCount, rssSampler, runLoad } from "./lib/load.ts";
import { NbdClient } from "./lib/nbd-client.ts";
import { cacheDir, REPO } from "./lib/paths.ts";
import { exited, run, sleep, startChild, stopAllChildren, stopChild, waitFor } from "./lib/proc.ts";
import { type SynthFile, makeSynthImage } from "./lib/synth-image.ts";

const SECONDS = Number(process.env.LOAD_SECONDS ?? 60);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 64);
const TAG = "load";
const CACHE_MIB = 32;
/** Node itself (~50 MiB), the reply buffer pool (≤ 64 MiB idle), plan and metadata caches, replies in flight, GC slack. Measured: ~200 MiB peak with a 32 MiB cache. */
const OVERHEAD_MIB = 224;

let work: string;
let oci: string;
let image: string;
let files: SynthFile[];
/** Device offset of each file's first byte in the exported ext image. */
const fileOffset = new Map<number, number>();

interface Served {
  child: ChildProcess;
  port: number;
  log: () => string;
}

async function serve(opts: { port?: number; asNobody?: boolean } = {}): Promise<Served> {
  const args = [join(REPO, "bin/puzzlefs.js"), "serve", oci, "--tag", TAG, "--listen", `127.0.0.1:${opts.port ?? 0}`, "--cache-size", `${CACHE_MIB}M`];
  const child = opts.asNobody
    ? startChild("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, ...args], { cwd: REPO })
    : startChild(process.execPath, args, { cwd: REPO });
  let text = "";
  child.stdout!.on("data", (b: Buffer) => (text += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (text += b.toString()));
  const port = await waitFor(
    "puzzlefs serve to listen",
    () => {
      if (child.exitCode !== null) throw new Error(`puzzlefs serve exited ${child.exitCode}:\n${text}`);
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(text);
      return m ? Number(m[1]) : undefined;
    },
    60_000,
  );
  return { child, port, log: () => text };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const blobPath = (hex: string) => join(oci, "blobs", "sha256", hex);
/** The exported image's bytes at [off, off+len). */
function oracle(off: number, len: number): Buffer {
  const fd = openSync(image, "r");
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
}

beforeAll(async () => {
  work = cacheDir("run", "load-faults");
  rmSync(work, { recursive: true, force: true });
  cacheDir("run", "load-faults");
  chmodSync(work, 0o755);
  oci = join(work, "oci");
  const img = await makeSynthImage(oci, TAG, { bytes: 96 << 20, files: 96 });
  files = img.files;
  await run("npm", ["run", "build", "--silent"], { cwd: REPO });
  image = join(work, "load.img");
  await run(process.execPath, [join(REPO, "bin/puzzlefs.js"), "export", `${oci}:${TAG}`, image, "--no-progress"], { cwd: REPO, env: { ...process.env, SOURCE_DATE_EPOCH: "0" } });
  // Where each file starts on the disk: the plan's file region at file block 0.
  const opened = await openImage(oci, TAG);
  const plan = planFor(opened).plan;
  const rt = plan.regions;
  for (let i = 0; i < rt.count; i++) {
    if (rt.kind[i] === RK.FILE && rt.arg2[i] === 0) fileOffset.set(plan.inodes.treeIno[rt.arg[i]!]!, rt.start[i]! * 4096);
  }
  // The unprivileged server must be able to read the layout (until a test takes that away).
  for (const p of [oci, join(oci, "blobs"), join(oci, "blobs", "sha256")]) chmodSync(p, 0o755);
  process.stdout.write(`load-faults: image ${mib(img.storedBytes)} MiB in ${files.length} files, export ${mib(statSync(image).size)} MiB\n`);
}, 600_000);

afterAll(async () => {
  await stopAllChildren();
});

describe(`load: ${CONNECTIONS} connections × ${SECONDS} s of random reads`, () => {
  it("zero errors, every byte equal to `puzzlefs export`, RSS within the cache cap plus a fixed overhead", async () => {
    const s = await serve();
    try {
      const rss = rssSampler(s.child.pid!);
      const r = await runLoad({ port: s.port, exportName: TAG, image, connections: CONNECTIONS, depth: 2, seconds: SECONDS });
      const peak = rss.stop();
      const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
      process.stdout.write(
        `load-faults: connections held ${r.connections}, requests served ${r.requests} (${(r.requests / r.seconds).toFixed(0)}/s, ${mib(r.bytes / r.seconds)} MiB/s), ` +
          `p50 ${(r.p50us / 1000).toFixed(1)} ms, p99 ${(r.p99us / 1000).toFixed(1)} ms, max ${(r.maxus / 1000).toFixed(1)} ms, ` +
          `server peak RSS ${mib(peak)} MiB (cache cap ${CACHE_MIB} MiB + overhead ≤ ${OVERHEAD_MIB} MiB), errors ${r.errors}, wrong bytes ${r.wrongBytes}; loadavg ${load}\n`,
      );
      expect(r.firstError).toBeUndefined();
      expect([r.errors, r.wrongBytes]).toEqual([0, 0]);
      expect(r.connections).toBe(CONNECTIONS);
      expect(r.requests).toBeGreaterThan(CONNECTIONS * 10);
      expect(peak).toBeLessThanOrEqual((CACHE_MIB + OVERHEAD_MIB) * 2 ** 20);
      expect(s.child.exitCode).toBeNull();
    } finally {
      await stopChild(s.child);
    }
  });
});

/** Read the first 4 KiB of `f` through a simple and a structured connection. */
async function readFile4k(port: number, f: SynthFile): Promise<Array<{ error: number; message?: string; wrong: number }>> {
  const off = fileOffset.get(f.ino)!;
  const out = [];
  for (const structured of [false, true]) {
    const c = await NbdClient.connect(port, TAG, { structured });
    try {
      const r = await c.read(off, 4096);
      out.push({ error: r.error, message: r.message, wrong: r.error === 0 ? countDiff(r.data!, oracle(off, 4096)) : 0 });
    } finally {
      await c.close();
    }
  }
  return out;
}

const EIO = 5;
const ok = [{ error: 0, message: undefined, wrong: 0 }, { error: 0, message: undefined, wrong: 0 }];

describe("faults in the image store while serving", () => {
  it("a chunk blob corrupted on disk: EIO for reads touching it (log names the blob), others fine; restored: reads succeed", async () => {
    const s = await serve();
    const [f, g] = [files[3]!, files[10]!];
    const hex = f.blobs[0]!;
    const orig = readFileSync(blobPath(hex));
    try {
      const bad = Buffer.from(orig);
      bad[bad.length >> 1]! ^= 0x01;
      writeFileSync(blobPath(hex), bad);
      const r = await readFile4k(s.port, f);
      expect(r.map((x) => x.error)).toEqual([EIO, EIO]);
      expect(r[1]!.message).toContain(`chunk blob sha256:${hex}: sha256 mismatch`);
      expect(await readFile4k(s.port, g)).toEqual(ok);
      await waitFor("the log line", () => (s.log().includes(`sha256:${hex}`) && /-> EIO/.test(s.log()) ? true : undefined), 10_000);
      writeFileSync(blobPath(hex), orig);
      expect(await readFile4k(s.port, f)).toEqual(ok);
      expect(s.child.exitCode).toBeNull();
    } finally {
      writeFileSync(blobPath(hex), orig);
      await stopChild(s.child);
    }
  });

  it("a chunk blob missing: EIO naming it, other files fine; put back: reads succeed", async () => {
    const s = await serve();
    const [f, g] = [files[5]!, files[12]!];
    const hex = f.blobs[0]!;
    try {
      renameSync(blobPath(hex), `${blobPath(hex)}.away`);
      const r = await readFile4k(s.port, f);
      expect(r.map((x) => x.error)).toEqual([EIO, EIO]);
      expect(r[1]!.message).toContain(`chunk blob sha256:${hex}: not found`);
      expect(await readFile4k(s.port, g)).toEqual(ok);
      renameSync(`${blobPath(hex)}.away`, blobPath(hex));
      expect(await readFile4k(s.port, f)).toEqual(ok);
      expect(s.log()).toContain(`sha256:${hex}: not found`);
    } finally {
      try {
        renameSync(`${blobPath(hex)}.away`, blobPath(hex));
      } catch {
        /* already back */
      }
      await stopChild(s.child);
    }
  });

  it("the blob directory becomes unreadable (server as uid 65534): EIO for blobs not cached, cached ones still served; readable again: fine", async () => {
    const s = await serve({ asNobody: true });
    const dir = join(oci, "blobs", "sha256");
    const [cached, f] = [files[7]!, files[14]!];
    try {
      const uid = readFileSync(`/proc/${s.child.pid}/status`, "utf8");
      // setpriv execs node in place: the server process itself runs as 65534.
      expect(/Uid:\s+65534\s/.exec(uid)).not.toBeNull();
      expect(await readFile4k(s.port, cached)).toEqual(ok);
      chmodSync(dir, 0o000);
      const r = await readFile4k(s.port, f);
      expect(r.map((x) => x.error)).toEqual([EIO, EIO]);
      expect(r[1]!.message).toMatch(new RegExp(`chunk blob sha256:${f.blobs[0]}: EACCES`));
      expect(await readFile4k(s.port, cached)).toEqual(ok);
      chmodSync(dir, 0o755);
      expect(await readFile4k(s.port, f)).toEqual(ok);
      expect(s.child.exitCode).toBeNull();
    } finally {
      chmodSync(dir, 0o755);
      await stopChild(s.child);
    }
  });
});

describe("misbehaving clients and a crashing server", () => {
  it("clients killed mid-transfer, many times: no crash, no wrong bytes, descriptors back to the baseline", async () => {
    const s = await serve();
    const pid = s.child.pid!;
    try {
      await readFile4k(s.port, files[0]!); // warm up: the export's first blob load, lazy module loads
      await sleep(300);
      const baseline = fdCount(pid);
      const CYCLES = 60;
      for (let i = 0; i < CYCLES; i++) {
        const c = await NbdClient.connect(s.port, TAG, { structured: i % 2 === 0 });
        const reads = Array.from({ length: 16 }, (_, k) => c.read(((i * 16 + k) % 64) * (1 << 20), 1 << 20).catch(() => undefined));
        await Promise.race([reads[0], sleep(5)]);
        c.kill(); // RST in the middle of 16 MiB of replies
      }
      // A real client process killed while copying.
      for (let i = 0; i < 3; i++) {
        const copy = spawn("nbdcopy", ["--connections=4", `nbd://127.0.0.1:${s.port}/${TAG}`, "null:"], { stdio: "ignore" });
        await sleep(150);
        copy.kill("SIGKILL");
        await exited(copy);
      }
      const settled = await waitFor("descriptors back to baseline", () => (fdCount(pid) <= baseline ? fdCount(pid) : undefined), 20_000).catch(() => fdCount(pid));
      process.stdout.write(`load-faults: ${CYCLES} killed clients + 3 killed nbdcopy: server fds ${baseline} before, ${settled} after\n`);
      expect(settled).toBeLessThanOrEqual(baseline);
      const r = await runLoad({ port: s.port, exportName: TAG, image, connections: 8, depth: 2, seconds: 3 });
      expect([r.errors, r.wrongBytes, s.child.exitCode]).toEqual([0, 0, null]);
      expect(r.requests).toBeGreaterThan(0);
    } finally {
      await stopChild(s.child);
    }
  });

  it("the server SIGKILLed mid-transfer and restarted on the same port: clients see the drop, never a wrong byte; the new server serves correctly", async () => {
    let s = await serve();
    const port = s.port;
    try {
      for (let round = 0; round < 3; round++) {
        const during = runLoad({ port, exportName: TAG, image, connections: 8, depth: 2, seconds: 5 });
        await sleep(1500);
        s.child.kill("SIGKILL");
        await exited(s.child);
        const r = await during;
        // Each connection ends with one failed read (the drop); nothing it received was wrong.
        expect(r.wrongBytes).toBe(0);
        expect(r.errors).toBeGreaterThan(0);
        expect(r.firstError).toMatch(/connection closed|ECONNRESET|EPIPE/);
        s = await serve({ port });
        const after = await runLoad({ port, exportName: TAG, image, connections: 8, depth: 2, seconds: 2 });
        expect([after.errors, after.wrongBytes]).toEqual([0, 0]);
        expect(after.requests).toBeGreaterThan(0);
      }
    } finally {
      await stopChild(s.child);
    }
  });
});
