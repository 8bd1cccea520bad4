/**
 * Worker thread of the chunk pool (chunk-pool.ts): compresses, hashes and
 * stores the chunks it is sent, one message per chunk, and answers with the
 * blob's name, size, flag and verity digest. Errors go back as plain data
 * (code, message, hint) and become PfsError again on the main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PfsError } from "../../common/errors.ts";
import { BlobStore } from "../../oci/blobs.ts";
import { putBlob, type Compression } from "./put-blob.ts";

export interface WorkerInit {
  ociDir: string;
  compression: Compression;
}

export interface WorkerRequest {
  id: number;
  data: Uint8Array;
}

export type WorkerReply =
  | { id: number; hex: string; size: number; compressed: boolean; verity: Uint8Array; existed: boolean }
  | { id: number; error: { code: string; message: string; hint?: string; data?: Record<string, unknown> } };

const port = parentPort;
if (port) {
  const init = workerData as WorkerInit;
  const store = new BlobStore(init.ociDir);
  port.on("message", (req: WorkerRequest) => {
    let reply: WorkerReply;
    try {
      const r = putBlob(store, req.data, init.compression);
      reply = { id: req.id, ...r };
    } catch (e) {
      const error =
        e instanceof PfsError
          ? { code: e.code, message: e.message, hint: e.hint, data: { ...e.data } }
          : { code: "INTERNAL", message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
      reply = { id: req.id, error };
    }
    port.postMessage(reply);
  });
}
