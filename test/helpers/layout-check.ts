/**
 * Test helpers to judge OCI layouts the builder wrote: a listing of every
 * file with its sha256 (to compare whole layouts), the blob names, and the
 * rootfs of a tag decoded by the C++ reference (`capnp convert`), which must
 * agree with our decoder.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { decodeRootfs } from "../../src/puzzlefs/format/decode.ts";
import type { Rootfs } from "../../src/puzzlefs/format/types.ts";
import { capnpConvertDecode } from "./rootfs-oracles.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** relative path → sha256 of every regular file of an OCI layout (oci-layout, index.json, blobs). */
export function layoutListing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string) => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(join(dir, r)).isDirectory()) visit(r);
      else out[r] = sha(readFileSync(join(dir, r)));
    }
  };
  visit("");
  return out;
}

export function blobNames(dir: string): string[] {
  const d = join(dir, "blobs", "sha256");
  return existsSync(d) ? readdirSync(d).sort() : [];
}

export function blobBytesTotal(dir: string): number {
  const d = join(dir, "blobs", "sha256");
  return blobNames(dir).reduce((s, n) => s + statSync(join(d, n)).size, 0);
}

interface IndexJson {
  manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }>;
}

export function readIndexJson(dir: string): IndexJson {
  return JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as IndexJson;
}

export function manifestOf(dir: string, tag: string): { hex: string; bytes: Buffer; json: { layers: Array<{ digest: string; mediaType: string; size: number; annotations?: Record<string, string> }> } } {
  const d = readIndexJson(dir).manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!d) throw new Error(`no tag ${tag} in ${dir}`);
  const hex = d.digest.slice("sha256:".length);
  const bytes = readFileSync(join(dir, "blobs", "sha256", hex));
  return { hex, bytes, json: JSON.parse(bytes.toString("utf8")) };
}

/** The rootfs of `tag`, after checking that `capnp convert binary:json` decodes it to the same values as our decoder. */
export function rootfsViaCapnp(dir: string, tag: string): { hex: string; bytes: Buffer; rootfs: Rootfs } {
  const m = manifestOf(dir, tag);
  const hex = m.json.layers[0]!.digest.slice("sha256:".length);
  const bytes = readFileSync(join(dir, "blobs", "sha256", hex));
  const rootfs = decodeRootfs(new Uint8Array(bytes));
  expect(capnpConvertDecode(bytes)).toEqual(rootfs);
  return { hex, bytes, rootfs };
}
