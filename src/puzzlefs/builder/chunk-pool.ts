/**
 * Parallel `put_blob` for chunks (spec §3.5). zstd on 4 KiB seekable frames
 * is the slowest step of `build -c` by far, so chunks are compressed, hashed
 * and written by a pool of worker threads, one per core. The pool only does
 * work; the builder consumes results strictly in chunk order (it keeps the
 * promises in a FIFO), so the image is byte-identical whatever the number of
 * workers or the order in which they finish.
 *
 * Chunks travel by the slab (fastcdc.ts SlabCdc): the slab's buffer and
 * its chunk list go to the least-loaded worker as one message, its buffer
 * transferred, not copied; the reply carries the results and the buffer
 * back, which goes into a free list for the chunker's next slab. So a chunk
 * costs no allocation, no copy and no message of its own (one message per
 * chunk cost two thread wake-ups per 64 KiB, and a fresh buffer per chunk
 * page faults and garbage collections, a measurable share of `build -c`'s
 * CPU on a 2-core machine).
 *
 * `workers: 0` runs the same code on the calling thread (small builds, where
 * starting threads costs more than it saves).
 *
 * From the TypeScript sources (tests, `node --import tsx`), a worker does not
 * inherit the tsx loader in Node 20, so it is started from a two-line
 * bootstrap that registers tsx first; the compiled package starts the .js
 * worker directly.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { ErrorCode, PfsError, type ErrorCode as Code } from "../../common/errors.ts";
import { log } from "../../common/debug.ts";
import { BlobStore } from "../../oci/blobs.ts";
import type { WorkerInit, WorkerReply, WorkerBatch, WorkerResult } from "./chunk-worker.ts";
import type { Slab } from "./fastcdc.ts";
import { putBlob, type Compression, type StoredBlob } from "./put-blob.ts";

interface Job {
  resolve(r: StoredBlob): void;
  reject(e: unknown): void;
  worker: number;
}

/** Bytes per slab: a few dozen chunks, one message each way. */
export const SLAB_BYTES = 2 << 20;

const FROM_SOURCE = import.meta.url.endsWith(".ts");

function startWorker(init: WorkerInit): Worker {
  const entry = new URL(`./chunk-worker.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url);
  if (!FROM_SOURCE) return new Worker(entry, { workerData: init });
  // tsx's ESM API (its "import" entry; createRequire would resolve the CJS one).
  const tsxDir = dirname(createRequire(import.meta.url).resolve("tsx/package.json"));
  const api = pathToFileURL(join(tsxDir, "dist", "esm", "api", "index.mjs")).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

function revive(e: { code: string; message: string; hint?: string; data?: Record<string, unknown> }): PfsError {
  const code = (Object.values(ErrorCode) as string[]).includes(e.code) ? (e.code as Code) : ErrorCode.INTERNAL;
  return new PfsError(code, e.message, { hint: e.hint, data: e.data });
}

export class ChunkPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failure: PfsError | null = null;
  private readonly store: BlobStore;

  /** `workers` threads (0: inline on this thread). */
  constructor(
    private readonly init: WorkerInit,
    workers: number,
  ) {
    this.store = new BlobStore(init.ociDir);
    for (let i = 0; i < workers; i++) this.spawn(i);
    log.pfs("chunk pool: %d workers, %s", workers, init.compression);
  }

  get size(): number {
    return this.workers.length;
  }

  private spawn(i: number): void {
    const w = startWorker(this.init);
    w.on("message", (reply: WorkerReply) => {
      this.free.push(reply.buffer);
      for (const m of reply.results) this.settle(m);
    });
    const die = (why: string) => {
      this.failure ??= PfsError.internal(`chunk worker ${i} ${why}`);
      for (const [id, job] of this.jobs) {
        if (job.worker !== i) continue;
        this.jobs.delete(id);
        job.reject(this.failure);
      }
    };
    w.on("error", (e) => die(`failed: ${e instanceof Error ? e.message : String(e)}`));
    w.on("exit", (code) => {
      if (!this.closed) die(`exited with status ${code}`);
    });
    // Idle workers must not keep the process alive.
    w.unref();
    this.workers.push(w);
    this.load.push(0);
  }

  private settle(m: WorkerResult): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    this.jobs.delete(m.id);
    if (--this.load[job.worker]! === 0) {
      // Idle workers must not keep the process alive.
      this.workers[job.worker]?.unref();
    }
    if ("error" in m) job.reject(revive(m.error));
    else job.resolve({ hex: m.hex, size: m.size, compressed: m.compressed, verity: m.verity, existed: m.existed });
  }

  private closed = false;
  private readonly pending = new Set<Promise<StoredBlob>>();
  /** Slab buffers back from the workers, for reuse. */
  private readonly free: ArrayBuffer[] = [];

  /** A buffer for the chunker's next slab (SLAB_BYTES). */
  acquireSlab(): ArrayBuffer {
    return this.free.pop() ?? new ArrayBuffer(SLAB_BYTES);
  }

  /**
   * Store the chunks of a slab; one promise per chunk, in order. The slab's
   * buffer is transferred to a worker (unusable here afterwards) and comes
   * back to the free list with the results.
   */
  putSlab(slab: Slab): Array<Promise<StoredBlob>> {
    if (slab.chunks.length === 0) {
      this.free.push(slab.buffer);
      return [];
    }
    const bytes = new Uint8Array(slab.buffer);
    if (this.failure || this.closed) {
      const e = this.failure ?? PfsError.internal("chunk pool used after close");
      return slab.chunks.map(() => Promise.reject(e));
    }
    if (this.workers.length === 0) {
      const out = slab.chunks.map((c) => {
        try {
          return Promise.resolve(putBlob(this.store, bytes.subarray(c.start, c.start + c.length), this.init.compression));
        } catch (e) {
          return Promise.reject(e);
        }
      });
      this.free.push(slab.buffer);
      return out;
    }
    let best = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[best]!) best = i;
    const items: WorkerBatch["items"] = [];
    const out = slab.chunks.map((c) => {
      const id = this.nextId++;
      items.push({ id, start: c.start, length: c.length });
      const p = new Promise<StoredBlob>((resolve, reject) => {
        this.jobs.set(id, { resolve, reject, worker: best });
      }).finally(() => this.pending.delete(p));
      this.pending.add(p);
      return p;
    });
    this.load[best]! += items.length;
    const w = this.workers[best]!;
    w.ref();
    const msg: WorkerBatch = { buffer: slab.buffer, items };
    w.postMessage(msg, [slab.buffer]);
    return out;
  }

  /**
   * Stop the workers. Chunks already sent are allowed to finish first (a
   * few at most), so no worker is killed halfway through writing a blob and
   * no temp file is left behind.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
