/**
 * Worker thread of the chunk pool (chunk-pool.ts): compresses, hashes and
 * stores the chunks it is sent, a slab per message, and answers each slab
 * with one message: per chunk the blob's name, size, flag and verity digest.
 * Errors go back as plain data (code, message, hint) and become PfsError
 * again on the main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PfsError } from "../../common/errors.ts";
import { BlobStore } from "../../oci/blobs.ts";
import { putBlob, type Compression } from "./put-blob.ts";

export interface WorkerInit {
  ociDir: string;
  compression: Compression;
}

/** Chunks to store, in order: each a piece of `buffer` (a slab, transferred). */
export interface WorkerBatch {
  buffer: ArrayBuffer;
  items: Array<{ id: number; start: number; length: number }>;
}

export type WorkerResult =
  | { id: number; hex: string; size: number; compressed: boolean; verity: Uint8Array; existed: boolean }
  | { id: number; error: { code: string; message: string; hint?: string; data?: Record<string, unknown> } };

/** One reply per batch, one result per chunk; the slab's buffer goes back (transferred) for reuse. */
export interface WorkerReply {
  results: WorkerResult[];
  buffer: ArrayBuffer;
}

function store1(store: BlobStore, compression: Compression, id: number, data: Uint8Array): WorkerResult {
  try {
    return { id, ...putBlob(store, data, compression) };
  } catch (e) {
    const error =
      e instanceof PfsError
        ? { code: e.code, message: e.message, hint: e.hint, data: { ...e.data } }
        : { code: "INTERNAL", message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
    return { id, error };
  }
}

const port = parentPort;
if (port) {
  const init = workerData as WorkerInit;
  const store = new BlobStore(init.ociDir);
  port.on("message", (batch: WorkerBatch) => {
    const bytes = new Uint8Array(batch.buffer);
    const results = batch.items.map((it) => store1(store, init.compression, it.id, bytes.subarray(it.start, it.start + it.length)));
    const reply: WorkerReply = { results, buffer: batch.buffer };
    port.postMessage(reply, [batch.buffer]);
  });
}
