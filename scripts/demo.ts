/**
 * `npm run demo [-- SERVE_OPTIONS]` (README "Quick start"): build the sample
 * tree kept in the repository (sample/rootfs) into a PuzzleFS image in a
 * fresh temporary OCI directory, then `puzzlefs serve` it on 127.0.0.1:10809,
 * which prints the commands that attach it (nbd-client, QEMU, the nbd://
 * URI). Ctrl-C stops the server and removes the temporary directory.
 *
 * Extra arguments go to `serve` after the defaults, so they override them:
 * `npm run demo -- --listen 127.0.0.1:0` picks a free port. It needs nothing
 * beyond `npm ci`: no Debian package (the builder's native helper is
 * optional; without a C compiler it falls back to @napi-rs/xattr, which
 * handles the sample's UTF-8 names).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/cli/main.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SAMPLE = join(REPO, "sample", "rootfs");
const TAG = "sample";

const work = mkdtempSync(join(tmpdir(), "puzzlefs-demo-"));
const images = join(work, "images");
try {
  process.stderr.write(`demo: building ${SAMPLE} into ${images}:${TAG}\n`);
  let code = await main(["build", SAMPLE, `${images}:${TAG}`]);
  if (code === 0) {
    process.stderr.write(
      "demo: serving it. Attach it with one of the lines below (for nbd-client: `modprobe nbd` first),\n" +
        "demo: then mount it read-only: mount -o ro /dev/nbd0 /mnt. Ctrl-C stops the server.\n",
    );
    code = await main(["serve", images, "--listen", "127.0.0.1:10809", ...process.argv.slice(2)]);
  }
  process.exitCode = code;
} finally {
  rmSync(work, { recursive: true, force: true });
}
