/**
 * Canonical JSON as upstream writes manifests and index.json (spec §1.2,
 * RFC 8785 style): object keys sorted by UTF-16 code units, no whitespace,
 * absent fields omitted, no trailing newline. JavaScript's default string
 * sort compares UTF-16 code units and JSON.stringify escapes strings the way
 * serde_json does for the values we write, so that is all it takes.
 */
import { PfsError } from "../common/errors.ts";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue | undefined };

function canonicalize(v: unknown, path: string): unknown {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw PfsError.internal(`canonical JSON: non-finite number at ${path}`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => canonicalize(x, `${path}[${i}]`));
  if (typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonicalize(x, `${path}.${k}`);
    }
    return out;
  }
  throw PfsError.internal(`canonical JSON: unsupported ${typeof v} at ${path}`);
}

export function canonicalJson(v: unknown): string {
  return JSON.stringify(canonicalize(v, "$"));
}

export function canonicalJsonBytes(v: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(canonicalJson(v), "utf8"));
}

/** Parse UTF-8 JSON bytes; failures are FORMAT errors naming the object. */
export function parseJson(bytes: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw PfsError.format(what, "not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8 quotes the offending input in its message: escape control bytes so the error stays one printable line.
    // eslint-disable-next-line no-control-regex
    const why = (e as Error).message.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    throw PfsError.format(what, `not valid JSON (${why})`);
  }
}
