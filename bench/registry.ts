/**
 * `npm run bench -- registry [--image DIR:TAG] [--tree DIR] [--grow MIB]`
 *
 * Serving straight from a registry against copying first, same image, one
 * run each, everything on 127.0.0.1 (docker-registry 2.8, plain HTTP):
 *   lazy:       `puzzlefs serve oci://…` (empty cache)
 *   copy first: `skopeo copy docker://… oci:DIR:TAG`, then `puzzlefs serve DIR`
 * Times from the moment the first command starts:
 *   - listening:    the server prints "listening on";
 *   - first byte:   an NBD read of block 0 returns (libnbd, Python binding);
 *   - /etc ready:   the export is mounted read-only on the host (nbdfuse +
 *                   loop mount, the kernel's ext4 driver), `ls /etc` and
 *                   `cat /etc/os-release` done.
 * Also the bytes the registry served: counted by a proxy in front of it for
 * the lazy path (which pays the proxy's overhead); every blob for the copy.
 * Target (issue 8): lazy ≥ 10× faster to /etc for a Debian minbase tree,
 * and growing with image size: so, when the image comes from a tree, the
 * same is measured again for that tree plus --grow MiB (default 256) of
 * generated files under /opt/bench-data, and both speed-ups are printed.
 *
 * The image: --image DIR:TAG; else --tree DIR built with `puzzlefs build`
 * (default tree: the integration corpus .cache/corpus/debian-minbase), when
 * the CLI has `build`; else a synthetic root-filesystem-shaped image.
 * Needs root (loop mount). Both servers run the compiled CLI (npm run build).
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createCipheriv, createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { mountExport } from "../integration/lib/hostmount.ts";
import { startProxy, startRegistry } from "../integration/lib/registry.ts";
import { makeSyntheticRootfs } from "../integration/lib/synthetic-image.ts";

const exec = promisify(execFile);
const REPO = join(import.meta.dirname, "..");
const BIN = join(REPO, "bin", "puzzlefs.js");

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function hasBuild(): Promise<boolean> {
  const { stdout } = await exec(process.execPath, [BIN, "--help"]);
  return /^\s+build\b/m.test(stdout);
}

/** Start `puzzlefs serve ARGS` (compiled); resolve with its port once it listens. */
function serve(args: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, "serve", ...args, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  const stop = async () => {
    if (child.exitCode !== null) return;
    const done = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await done;
  };
  return new Promise((resolve, reject) => {
    const on = (b: Buffer) => {
      text += b.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(text);
      if (m) resolve({ port: Number(m[1]), stop });
    };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
    child.once("exit", (c) => reject(new Error(`puzzlefs serve exited ${c}: ${text}`)));
  });
}

async function firstByte(uri: string): Promise<void> {
  await exec("/usr/bin/python3", ["-c", "import nbd,sys\nh=nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pread(4096,0)\nh.shutdown()", uri]);
}

interface Times {
  copy?: number;
  listening: number;
  firstByte: number;
  etc: number;
}

/** From t0: (copy), serve, first byte, mount and read /etc; everything stopped afterwards. */
async function measure(label: string, t0: number, serveArgs: string[], exportName: string, work: string, copy?: number): Promise<Times> {
  const s = await serve(serveArgs);
  const listening = performance.now() - t0;
  const uri = `nbd://127.0.0.1:${s.port}/${encodeURIComponent(exportName)}`;
  await firstByte(uri);
  const fb = performance.now() - t0;
  const m = await mountExport(uri, join(work, `mnt-${label}`));
  try {
    await exec("ls", ["-la", join(m.mountpoint, "etc")]);
    await exec("cat", [join(m.mountpoint, "etc", "os-release")]);
    return { copy, listening, firstByte: fb, etc: performance.now() - t0 };
  } finally {
    await m.unmount();
    await s.stop();
  }
}

/** Generated files (text-like, zstd ~3×, and incompressible), deterministic: `mib` MiB in 1 MiB files. */
function addData(dir: string, mib: number): void {
  mkdirSync(dir, { recursive: true });
  const key = createHash("sha256").update("bench-registry").digest();
  const rnd = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  for (let i = 0; i < mib; i++) {
    const r = rnd.update(Buffer.alloc(1 << 20));
    // Every other file text-like: random bytes mapped onto a small alphabet.
    if (i % 2 === 0) for (let k = 0; k < r.length; k++) r[k] = 97 + (r[k]! % 16);
    writeFileSync(join(dir, `f${String(i).padStart(4, "0")}.bin`), r);
  }
}

/** Push `image`, then time the lazy path and the copy-first path for it; prints a table. */
async function measureImage(
  image: string,
  what: string,
  repo: string,
  host: string,
  proxy: Awaited<ReturnType<typeof startProxy>>,
  work: string,
): Promise<{ stored: number; etc: number }> {
  const tag = image.slice(image.lastIndexOf(":") + 1);
  // Set-up, not measured: `puzzlefs push` (skopeo's push is quadratic in the layer count: ~6 min for 1600 blobs here).
  await exec(process.execPath, [BIN, "push", image, `oci://${host}/bench/${repo}:${tag}`, "--insecure-registry"]);
  const info = JSON.parse((await exec(process.execPath, [BIN, "info", image, "--json"], { maxBuffer: 1 << 26 })).stdout);
  const img = info.images[0];

  proxy.reset();
  const t1 = performance.now();
  const lazy = await measure(`lazy-${repo}`, t1, [`oci://${proxy.host}/bench/${repo}:${tag}`, "--insecure-registry", "--cache-dir", join(work, `cache-${repo}`)], tag, work);
  const lazyBytes = proxy.bytes;

  // skopeo talks to the registry directly: the counting proxy costs it more (many requests) than
  // it costs the lazy path, and it fetches every blob anyway.
  const copiedDir = join(work, `copied-${repo}`);
  const t2 = performance.now();
  await exec("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/bench/${repo}:${tag}`, `oci:${copiedDir}:${tag}`]);
  const copied = performance.now() - t2;
  const copyBytes = img.storedBytes as number;
  const eager = await measure(`copy-${repo}`, t2, [copiedDir, "--tag", tag], tag, work, copied);

  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  console.log(`image: ${what}`);
  console.log(`       ${img.inodes} inodes, ${img.chunkBlobs.distinct} chunk blobs, ${mb(img.storedBytes)} stored, ${mb(img.logicalBytes)} logical`);
  console.log("");
  console.log("                      lazy (serve oci://)   copy first (skopeo copy + serve)");
  console.log(`skopeo copy           -                     ${s(eager.copy!)}`);
  console.log(`listening             ${s(lazy.listening).padEnd(22)}${s(eager.listening)}`);
  console.log(`first byte served     ${s(lazy.firstByte).padEnd(22)}${s(eager.firstByte)}`);
  console.log(`/etc readable         ${s(lazy.etc).padEnd(22)}${s(eager.etc)}`);
  console.log(`registry bytes        ${mb(lazyBytes).padEnd(22)}${mb(copyBytes)}`);
  console.log("");
  console.log(`speed-up: first byte ${(eager.firstByte / lazy.firstByte).toFixed(1)}×, /etc readable ${(eager.etc / lazy.etc).toFixed(1)}× (target ≥ 10× for Debian minbase)`);
  return { stored: copyBytes, etc: eager.etc / lazy.etc };
}

export default async function main(args: string[]): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench registry needs root (loop mount)");
  await exec("npm", ["run", "build", "--silent"], { cwd: REPO });
  const work = mkdtempSync(join(tmpdir(), "pfs-bench-registry-"));
  const reg = await startRegistry({ dir: join(work, "reg") });
  const proxy = await startProxy(reg.host);
  try {
    let image = opt(args, "--image");
    let what: string;
    if (image) what = image;
    else if (await hasBuild()) {
      const tree = opt(args, "--tree") ?? join(REPO, ".cache", "corpus", "debian-minbase");
      if (!existsSync(tree)) throw new Error(`${tree} does not exist: run the integration suite once (it debootstraps it), or pass --tree DIR`);
      const t = performance.now();
      await exec(process.execPath, [BIN, "build", tree, `${join(work, "built")}:bench`], { maxBuffer: 1 << 26 });
      image = `${join(work, "built")}:bench`;
      what = `puzzlefs build of ${tree} (${((performance.now() - t) / 1000).toFixed(1)} s to build)`;
    } else {
      const s = await makeSyntheticRootfs(join(work, "synthetic"), "bench", { libFiles: 600 });
      image = `${s.dir}:bench`;
      what = "synthetic root-filesystem-shaped image (`puzzlefs build` is not available yet)";
    }
    const speedups = [await measureImage(image, what, "img", reg.host, proxy, work)];
    const growMiB = Number(opt(args, "--grow") ?? 256);
    const tree = opt(args, "--tree") ?? join(REPO, ".cache", "corpus", "debian-minbase");
    if (!opt(args, "--image") && growMiB > 0 && (await hasBuild())) {
      // The same tree plus generated files: the lazy path should not care, the copy should.
      const grown = join(work, "grown");
      await exec("cp", ["-a", tree, grown]); // device nodes too (fs.cpSync cannot copy them)
      addData(join(grown, "opt", "bench-data"), growMiB);
      await exec(process.execPath, [BIN, "build", grown, `${join(work, "built-grown")}:bench`], { maxBuffer: 1 << 26 });
      console.log("");
      speedups.push(await measureImage(`${join(work, "built-grown")}:bench`, `the same tree + ${growMiB} MiB under /opt/bench-data`, "grown", reg.host, proxy, work));
    }
    if (speedups.length > 1) {
      console.log("");
      console.log(`speed-up to /etc readable by image size: ${speedups.map((x) => `${(x.stored / 1e6).toFixed(0)} MB stored: ${x.etc.toFixed(1)}×`).join(", ")}`);
    }
  } finally {
    await proxy.stop();
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
