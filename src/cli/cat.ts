/**
 * `puzzlefs cat OCI_DIR:TAG PATH`: write one regular file of the image to
 * stdout, byte for byte, in pieces so memory stays flat for big files.
 * Every chunk is verified before its bytes are written.
 */
import type { Command } from "commander";
import { PfsError } from "../common/errors.ts";
import type { ImageTree } from "../puzzlefs/reader/tree.ts";
import { addImageOptions, withImage, resolvePath, toStdout, writeOut, type ImageOptions } from "./image-arg.ts";

const PIECE = 1 << 20;

export async function cat(tree: ImageTree, path: string): Promise<void> {
  const ino = resolvePath(tree, path);
  const n = tree.node(ino);
  if (n.kind !== "file") {
    throw PfsError.usage(`${path} is a ${n.kind === "dir" ? "directory" : n.kind === "lnk" ? "symbolic link" : `${n.kind} node`}, not a regular file`, n.kind === "dir" ? "use `puzzlefs ls` to list it" : undefined);
  }
  for (let off = 0; off < n.size; off += PIECE) await writeOut(await tree.readFile(ino, off, PIECE));
}

export function registerCat(program: Command): void {
  addImageOptions(
    program
      .command("cat")
      .description("Write a regular file of a PuzzleFS image to stdout.")
      .argument("<OCI_DIR:TAG>", "the image: OCI_DIR:TAG, or oci://HOST[:PORT]/REPO:TAG or …/REPO@sha256:DIGEST in a registry")
      .argument("<PATH>", "a regular file inside the image, e.g. /etc/hostname"),
  ).action(async (ref: string, path: string, opts: ImageOptions) => {
    await withImage(ref, opts, (img) => toStdout(() => cat(img.tree, path)));
  });
}
