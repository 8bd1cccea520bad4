/**
 * Path lookup on any Tree, as upstream's reader does it (spec §2.4): the
 * path starts with '/', each component is an exact byte match in its
 * directory, '.' and '..' are refused, empty components (`//`, a trailing
 * '/') are skipped.
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import type { Tree } from "../tree.ts";

const enc = new TextEncoder();

function splitPath(path: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      if (i > start) parts.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

export function lookupPath(tree: Tree, path: string | Uint8Array): number {
  const p = typeof path === "string" ? enc.encode(path) : path;
  const shown = Buffer.from(p).toString("utf8");
  if (p[0] !== 0x2f) throw PfsError.usage(`path ${JSON.stringify(shown)} must start with "/"`, "give an absolute path inside the image, e.g. /etc/hostname");
  let ino = tree.rootIno;
  let sofar = "";
  for (const part of splitPath(p)) {
    const name = Buffer.from(part).toString("utf8");
    if (name === "." || name === "..") throw PfsError.usage(`path ${JSON.stringify(shown)}: "." and ".." are not allowed`, "give the path without . or .. components");
    const dir = tree.node(ino);
    if (dir.kind !== "dir") throw new PfsError(ErrorCode.NOT_FOUND, `path ${JSON.stringify(shown)}: ${sofar || "/"} is not a directory`, { data: { what: shown } });
    const hit = dir.entries!.find((e) => Buffer.compare(e.name, part) === 0);
    sofar += `/${name}`;
    if (!hit) throw PfsError.notFound(`path ${JSON.stringify(sofar)} in the image`, sofar === `/${name}` ? undefined : `list the parent directory to see what it holds`);
    ino = hit.ino;
  }
  return ino;
}
