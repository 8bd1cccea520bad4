/**
 * What the image-reading commands share: the `OCI_DIR:TAG` argument, the
 * `--digest` option, opening the image, printing raw names safely, and
 * writing to stdout with backpressure.
 */
import { once } from "node:events";
import type { Command } from "commander";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { parseImageRef } from "../oci/ref.ts";
import { isRemoteRef } from "../oci/remote/ref.ts";
import { openImage, type PuzzleImage } from "../puzzlefs/reader/image.ts";
import { lookupPath } from "../puzzlefs/reader/path.ts";
import type { Tree } from "../puzzlefs/tree.ts";
import { addRegistryOptions, openRemoteArg, type RegistryCliOptions } from "./remote-args.ts";

export interface ImageOptions extends RegistryCliOptions {
  digest?: string;
}

/** `--digest` and the registry options (for `oci://` images). */
export function addImageOptions(cmd: Command): Command {
  return addRegistryOptions(addDigestOption(cmd));
}

export function addDigestOption(cmd: Command): Command {
  return cmd.option(
    "--digest <hex>",
    "pin the image: the manifest's fs-verity digest (as printed by `puzzlefs build`) must equal HEX, and the rootfs and every chunk read are checked against it",
  );
}

/** `OCI_DIR:TAG` or `oci://HOST[:PORT]/REPO:TAG|@sha256:…`. Close `image.source` when done. */
export async function openImageArg(ref: string, opts: ImageOptions): Promise<PuzzleImage> {
  if (isRemoteRef(ref)) {
    const source = await openRemoteArg(ref, opts);
    try {
      return await openImage(source, { digest: opts.digest });
    } catch (e) {
      source.close();
      throw e;
    }
  }
  const { dir, tag } = parseImageRef(ref);
  return openImage(dir, tag, { digest: opts.digest });
}

/** Run a command body on an opened image, releasing its source (sockets) afterwards. */
export async function withImage(ref: string, opts: ImageOptions, body: (img: PuzzleImage) => Promise<void>): Promise<void> {
  const img = await openImageArg(ref, opts);
  try {
    await body(img);
  } finally {
    img.source.close?.();
  }
}

/** Resolve a path inside the image; a missing path is the user's mistake (exit 1), not a broken image. */
export function resolvePath(tree: Tree, path: string): number {
  const abs = path.startsWith("/") ? path : `/${path}`;
  try {
    return lookupPath(tree, abs);
  } catch (e) {
    if (e instanceof PfsError && e.code === ErrorCode.NOT_FOUND) {
      const msg = e.message.endsWith(": not found") ? `${e.message.slice(0, -": not found".length)}: no such file or directory` : e.message;
      throw PfsError.usage(msg, "list the image with `puzzlefs ls OCI_DIR:TAG / -R`");
    }
    throw e;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A raw name as printable text: valid UTF-8 without control characters
 * passes through; anything else (control bytes, invalid UTF-8, backslash)
 * becomes a C-style escape, so every name prints on one line, unambiguously.
 */
export function quoteName(name: Uint8Array): string {
  let text: string | null = null;
  try {
    text = utf8.decode(name);
  } catch {
    text = null;
  }
  // eslint-disable-next-line no-control-regex
  if (text !== null && !/[\u0000-\u001f\u007f-\u009f\\]/.test(text)) return text;
  let out = "";
  for (let i = 0; i < name.length; ) {
    const b = name[i]!;
    if (b === 0x5c) {
      out += "\\\\";
      i++;
      continue;
    }
    if (b < 0x20 || b === 0x7f) {
      out += b === 0x0a ? "\\n" : b === 0x09 ? "\\t" : `\\x${b.toString(16).padStart(2, "0")}`;
      i++;
      continue;
    }
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    // A multi-byte sequence: keep it if it is valid UTF-8 and printable, else escape its first byte.
    const len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    let ch: string | null = null;
    if (len > 1 && i + len <= name.length) {
      try {
        ch = utf8.decode(name.subarray(i, i + len));
      } catch {
        ch = null;
      }
    }
    // eslint-disable-next-line no-control-regex
    if (ch !== null && !/[\u0080-\u009f]/.test(ch)) {
      out += ch;
      i += len;
    } else {
      out += `\\x${b.toString(16)}`;
      i++;
    }
  }
  return out;
}

/** Thrown by writeOut once the reader of stdout has gone away (EPIPE): the command just stops, like `cat | head`. */
export class StdoutClosed extends Error {}

let stdoutError: NodeJS.ErrnoException | null = null;
let watching = false;

/** Write to stdout, waiting for 'drain' when the pipe is full. */
export async function writeOut(chunk: string | Uint8Array): Promise<void> {
  if (!watching) {
    watching = true;
    // Without a listener an EPIPE on stdout would crash the process after the command finished.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      stdoutError = e;
    });
  }
  if (stdoutError) throw stdoutError.code === "EPIPE" ? new StdoutClosed() : PfsError.io("writing to stdout", stdoutError);
  if (!process.stdout.write(chunk)) {
    await Promise.race([once(process.stdout, "drain"), once(process.stdout, "close")]).catch(() => {});
    if (stdoutError) throw (stdoutError as NodeJS.ErrnoException).code === "EPIPE" ? new StdoutClosed() : PfsError.io("writing to stdout", stdoutError);
  }
}

/** Run a command body that writes to stdout; a closed stdout ends it quietly. */
export async function toStdout(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (!(e instanceof StdoutClosed)) throw e;
  }
}
