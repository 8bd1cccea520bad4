/**
 * Load generator for the load/fault suite: N connections (half with
 * structured replies), each keeping `depth` random READs in flight for a set
 * time; every reply is checked byte for byte against the exported image file
 * (`puzzlefs export` of the same tag). Also samples a process's RSS and open
 * file descriptors from /proc.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { rng } from "../../test/helpers/rootfs-gen.ts";
import { NbdClient } from "./nbd-client.ts";

export interface LoadOptions {
  port: number;
  exportName: string;
  /** The oracle: the exported image file. */
  image: string;
  connections: number;
  /** READs in flight per connection. */
  depth: number;
  seconds: number;
  /** Request lengths to draw from (bytes). */
  lengths?: readonly number[];
  seed?: number;
}

export interface LoadResult {
  connections: number;
  requests: number;
  bytes: number;
  errors: number;
  /** Bytes that differed from the oracle (must be 0). */
  wrongBytes: number;
  p50us: number;
  p99us: number;
  maxus: number;
  seconds: number;
  firstError?: string;
}

export function countDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  if (Buffer.compare(a, b) === 0) return 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const fd = openSync(o.image, "r");
  const lengths = o.lengths ?? [4096, 4096, 4096, 16384, 65536, 131072];
  const lat: number[] = [];
  const r: LoadResult = { connections: 0, requests: 0, bytes: 0, errors: 0, wrongBytes: 0, p50us: 0, p99us: 0, maxus: 0, seconds: o.seconds };
  const clients = await Promise.all(Array.from({ length: o.connections }, (_, i) => NbdClient.connect(o.port, o.exportName, { structured: i % 2 === 1 })));
  r.connections = clients.length;
  const size = clients[0]!.size;
  const expected = Buffer.alloc(Math.max(...lengths));
  const t0 = performance.now();
  const stopAt = t0 + o.seconds * 1000;
  const worker = async (c: NbdClient, rand: (n: number) => number): Promise<void> => {
    while (performance.now() < stopAt) {
      const len = lengths[rand(lengths.length)]!;
      const off = rand(Math.floor((size - len) / 512) + 1) * 512;
      const s = performance.now();
      let res;
      try {
        res = await c.read(off, len);
      } catch (e) {
        r.errors++;
        r.firstError ??= `read ${off}+${len}: ${(e as Error).message}`;
        return;
      }
      lat.push((performance.now() - s) * 1000);
      r.requests++;
      if (res.error !== 0) {
        r.errors++;
        r.firstError ??= `read ${off}+${len}: NBD error ${res.error} ${res.message ?? ""}`;
        continue;
      }
      const want = expected.subarray(0, len);
      readSync(fd, want, 0, len, off);
      const d = countDiff(res.data!, want);
      if (d) {
        r.wrongBytes += d;
        r.firstError ??= `read ${off}+${len}: ${d} wrong bytes`;
      }
      r.bytes += len;
    }
  };
  try {
    await Promise.all(clients.flatMap((c, i) => Array.from({ length: o.depth }, (_, k) => worker(c, rng((o.seed ?? 1) * 7919 + i * 131 + k)))));
  } finally {
    r.seconds = (performance.now() - t0) / 1000;
    await Promise.allSettled(clients.map((c) => c.close()));
    closeSync(fd);
  }
  lat.sort((a, b) => a - b);
  r.p50us = lat[Math.floor(lat.length * 0.5)] ?? 0;
  r.p99us = lat[Math.floor(lat.length * 0.99)] ?? 0;
  r.maxus = lat[lat.length - 1] ?? 0;
  return r;
}

/** Resident set size of a process, bytes (/proc/PID/status VmRSS). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Open file descriptors of a process (/proc/PID/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Sample RSS every `everyMs` until stop() is called; returns the peak. */
export function rssSampler(pid: number, everyMs = 250): { stop(): number; peak(): number } {
  let peak = rssBytes(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      /* the process ended */
    }
  }, everyMs);
  return {
    stop: () => (clearInterval(t), peak),
    peak: () => peak,
  };
}
