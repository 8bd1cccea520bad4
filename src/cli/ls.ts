/**
 * `puzzlefs ls OCI_DIR:TAG [PATH] [-l] [-R]`: list a directory of the merged
 * image (whiteouts already gone), in image order. Names are printed with
 * escapes when they are not printable UTF-8 (quoteName).
 */
import type { Command } from "commander";
import type { NodeKind, TreeNode } from "../puzzlefs/tree.ts";
import type { ImageTree } from "../puzzlefs/reader/tree.ts";
import { addImageOptions, withImage, quoteName, resolvePath, toStdout, writeOut, type ImageOptions } from "./image-arg.ts";

const TYPE_CHAR: Record<NodeKind, string> = { file: "-", dir: "d", lnk: "l", chr: "c", blk: "b", fifo: "p", sock: "s", unknown: "?" };

/** `drwxr-sr-x`-style mode string, setuid/setgid/sticky included. */
export function modeString(kind: NodeKind, perm: number): string {
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? "x" : "-");
  return (
    TYPE_CHAR[kind] +
    rwx((perm >> 6) & 7, (perm & 0o4000) !== 0, "s") +
    rwx((perm >> 3) & 7, (perm & 0o2000) !== 0, "s") +
    rwx(perm & 7, (perm & 0o1000) !== 0, "t")
  );
}

export function longLine(n: TreeNode, name: string): string {
  const size = n.kind === "chr" || n.kind === "blk" ? `${n.major}, ${n.minor}` : String(n.size);
  const link = n.kind === "lnk" ? ` -> ${quoteName(n.symlinkTarget!)}` : "";
  return `${modeString(n.kind, n.permissions)} ${String(n.ino).padStart(7)} ${String(n.uid).padStart(5)} ${String(n.gid).padStart(5)} ${size.padStart(10)} ${name}${link}`;
}

async function listDir(tree: ImageTree, ino: number, long: boolean): Promise<void> {
  const lines: string[] = [];
  for (const e of tree.node(ino).entries!) {
    const name = quoteName(e.name);
    lines.push(long ? longLine(tree.node(e.ino), name) : name);
  }
  if (lines.length) await writeOut(`${lines.join("\n")}\n`);
}

export async function ls(tree: ImageTree, path: string, opts: { long?: boolean; recursive?: boolean }): Promise<void> {
  const ino = resolvePath(tree, path);
  const top = tree.node(ino);
  if (top.kind !== "dir") {
    await writeOut(`${opts.long ? longLine(top, path) : path}\n`);
    return;
  }
  if (!opts.recursive) return listDir(tree, ino, !!opts.long);
  // ls -R: each directory's listing under a "path:" header, subdirectories depth-first in image order.
  const stack: Array<[number, string]> = [[ino, path]];
  let first = true;
  while (stack.length) {
    const [d, p] = stack.pop()!;
    await writeOut(`${first ? "" : "\n"}${p}:\n`);
    first = false;
    await listDir(tree, d, !!opts.long);
    const subdirs: Array<[number, string]> = [];
    for (const e of tree.node(d).entries!) {
      if (tree.kind(e.ino) === "dir") subdirs.push([e.ino, `${p === "/" ? "" : p}/${quoteName(e.name)}`]);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

export function registerLs(program: Command): void {
  addImageOptions(
    program
      .command("ls")
      .description("List a directory (default /) of a PuzzleFS image.")
      .argument("<OCI_DIR:TAG>", "the image: OCI_DIR:TAG, or oci://HOST[:PORT]/REPO:TAG or …/REPO@sha256:DIGEST in a registry")
      .argument("[PATH]", "a path inside the image", "/")
      .option("-l, --long", "long format: mode, inode, uid, gid, size (or major, minor), name, symlink target")
      .option("-R, --recursive", "list subdirectories recursively"),
  ).action(async (ref: string, path: string, opts: ImageOptions & { long?: boolean; recursive?: boolean }) => {
    await withImage(ref, opts, (img) => toStdout(() => ls(img.tree, path, opts)));
  });
}
