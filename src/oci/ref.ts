/**
 * `OCI_DIR:TAG` as upstream's CLI parses it (spec §1.5): split on ':' with
 * Rust's `split_terminator` (a single trailing empty piece is dropped) and
 * require exactly two pieces. So `a:b:c`, `dir` and `dir:` are refused and a
 * directory name cannot contain ':'. We additionally refuse an empty
 * directory or tag (`:tag`, `dir::`), which upstream only rejects later.
 */
import { PfsError } from "../common/errors.ts";

export interface ImageRef {
  dir: string;
  tag: string;
}

const UPSTREAM_MESSAGE = "Expected oci_dir in the following format <oci_dir>:<tag>";
const HINT = "write the image as OCI_DIR:TAG, e.g. ./images:latest (the directory name may not contain ':')";

function splitTerminator(s: string): string[] {
  const parts = s.split(":");
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

export function parseImageRef(s: string): ImageRef {
  const parts = splitTerminator(s);
  if (parts.length !== 2) throw PfsError.usage(`${UPSTREAM_MESSAGE}, got ${JSON.stringify(s)}`, HINT);
  const [dir, tag] = parts as [string, string];
  if (dir === "") throw PfsError.usage(`${UPSTREAM_MESSAGE}: the OCI directory is empty in ${JSON.stringify(s)}`, HINT);
  if (tag === "") throw PfsError.usage(`${UPSTREAM_MESSAGE}: the tag is empty in ${JSON.stringify(s)}`, HINT);
  checkTag(tag);
  return { dir, tag };
}

/** `OCI_DIR` or `OCI_DIR:TAG` (for commands where the tag is optional). */
export function parseImageRefOptionalTag(s: string): { dir: string; tag: string | undefined } {
  const parts = splitTerminator(s);
  if (parts.length === 1 && parts[0] !== "") return { dir: parts[0]!, tag: undefined };
  return parseImageRef(s);
}

/** Tags are free-form annotation values, but control characters never make sense in one. */
export function checkTag(tag: string): void {
  // eslint-disable-next-line no-control-regex
  if (tag === "" || /[\u0000-\u001f\u007f]/.test(tag)) {
    throw PfsError.usage(`invalid tag ${JSON.stringify(tag)}: must be non-empty without control characters`, HINT);
  }
}
