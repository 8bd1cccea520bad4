/**
 * Build throughput (not part of the unit suite): generate a tree of mixed
 * files (~1 GiB by default: text-like, incompressible, binary-like, many
 * small files, some duplicates), then time on the same tree, one after the
 * other, each from a warm page cache:
 *   puzzlefs build            (uncompressed)
 *   puzzlefs build -c         (zstd seekable)
 *   mkfs.erofs                (uncompressed, and -zlz4)
 *   tar -c | zstd -3
 * each writing into its own freshly made ext4 file system (see outputFs),
 * and print MB/s (Σ regular-file bytes / wall time), output sizes, and our
 * ratios. Target: `build -c` at least 1× `tar -c | zstd -3`. Last, the
 * format floor: the CPU time of the work the format itself requires of
 * `build -c` (see formatFloorSecs), and the best ratio it leaves on this
 * machine's cores.
 *
 *   npm run bench -- build [SIZE_MIB] [--tree DIR] [--keep]
 *   (--tree reuses/creates the tree in DIR; --keep leaves it there)
 */
import { spawnSync } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { compressSeekable } from "../src/puzzlefs/compression/seekable-encode.ts";
import { fsVerityDigest } from "../src/puzzlefs/verity.ts";

const args = process.argv.slice(2);
const sizeMiB = Number(args.find((a) => /^\d+$/.test(a)) ?? 1024);
const treeArg = args.includes("--tree") ? args[args.indexOf("--tree") + 1] : undefined;
const keep = args.includes("--keep") || treeArg !== undefined;
const REPO = resolve(import.meta.dirname, "..");

/** Deterministic fast pseudo-random bytes: AES-256-CTR over zeros. */
class Rand {
  private readonly c;
  constructor(seed: string) {
    const key = createHash("sha256").update(seed).digest();
    this.c = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  }
  bytes(n: number): Buffer {
    return this.c.update(Buffer.alloc(n));
  }
  /** Log-uniform integer in [lo, hi]. */
  logUniform(lo: number, hi: number): number {
    const u = this.bytes(4).readUInt32LE() / 2 ** 32;
    return Math.round(Math.exp(Math.log(lo) + u * (Math.log(hi) - Math.log(lo))));
  }
}

const VOCAB: Buffer[] = (() => {
  const r = new Rand("vocab");
  const letters = "etaoinshrdlcumwfgypbvkjxqz";
  return Array.from({ length: 4096 }, (_, i) => {
    const b = r.bytes(12);
    const len = 2 + (b[0]! % 9);
    let w = "";
    for (let k = 0; k < len; k++) w += letters[Math.floor((b[k + 1]! * b[k + 1]!) / 2600) % 26];
    return Buffer.from(i % 17 === 0 ? `${w}=${b[11]}` : w);
  });
})();

/** Text-like: Zipf-ish words from a 4096-word vocabulary (zstd -3: ~3×). */
function text(r: Rand, n: number): Buffer {
  const out = Buffer.allocUnsafe(n + 16);
  const rnd = r.bytes(Math.ceil(n / 2) + 16);
  let pos = 0;
  for (let i = 0; pos < n; i += 2) {
    const v = rnd.readUInt16LE(i % (rnd.length - 2));
    const w = VOCAB[(v * v) >>> 20]!;
    for (let k = 0; k < w.length && pos < n; k++) out[pos++] = w[k]!;
    if (pos < n) out[pos++] = (v & 15) === 0 ? 10 : 32;
  }
  return out.subarray(0, n);
}

/** Binary-like: 512-byte records, 200 random bytes then zeros and small counters (~2×). */
function binary(r: Rand, n: number): Buffer {
  const out = Buffer.alloc(n);
  const rnd = r.bytes(Math.ceil(n / 512) * 200);
  for (let rec = 0; rec * 512 < n; rec++) {
    rnd.copy(out, rec * 512, rec * 200, Math.min(rec * 200 + 200, rec * 200 + n - rec * 512));
    if (rec * 512 + 260 < n) out.writeUInt32LE(rec, rec * 512 + 256);
  }
  return out;
}

function generate(root: string, total: number): { files: number; bytes: number } {
  const r = new Rand("tree");
  let files = 0;
  let bytes = 0;
  const put = (dir: string, name: string, data: Buffer) => {
    mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, dir, name), data);
    files++;
    bytes += data.length;
  };
  const kept: Array<[string, Buffer]> = [];
  const fill = (cat: string, budget: number, lo: number, hi: number, make: (n: number) => Buffer, perDir: number) => {
    for (let used = 0, i = 0; used < budget; i++) {
      const n = Math.min(r.logUniform(lo, hi), budget - used);
      const data = make(n);
      put(`${cat}/d${String(Math.floor(i / perDir)).padStart(3, "0")}`, `f${i}.${cat}`, data);
      if (i % 7 === 0 && n >= 64 << 10 && kept.length < 200) kept.push([`${cat}-${i}`, data]);
      used += n;
    }
  };
  fill("text", total * 0.35, 4 << 10, 8 << 20, (n) => text(r, n), 50);
  fill("random", total * 0.25, 64 << 10, 64 << 20, (n) => r.bytes(n), 20);
  fill("bin", total * 0.2, 16 << 10, 16 << 20, (n) => binary(r, n), 50);
  fill("small", total * 0.1, 64, 16 << 10, (n) => text(r, n), 500);
  // Duplicates: copies of earlier files under other names.
  let dup = 0;
  for (const [name, data] of kept) {
    if (dup >= total * 0.1) break;
    put(`dup/${name.slice(0, 1)}`, name, data);
    dup += data.length;
  }
  return { files, bytes };
}

function treeBytes(root: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) visit(join(d, e.name));
      else if (e.isFile()) {
        files++;
        bytes += statSync(join(d, e.name)).size;
      }
    }
  };
  visit(root);
  return { files, bytes };
}

/**
 * The part of `build -c` the format fixes (spec §3.5-3.7): every chunk
 * compressed as independent 4 KiB zstd frames, then fs-verity and sha256 of
 * the result. Timed on this thread only (64 KiB pieces stand in for chunks;
 * reading the files is not counted), with the same encoder the CLI uses.
 */
function formatFloorSecs(root: string): number {
  let secs = 0;
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) visit(join(d, e.name));
      else if (e.isFile()) {
        const data = readFileSync(join(d, e.name));
        const t = performance.now();
        for (let o = 0; o < data.length; o += 65536) {
          const z = compressSeekable(data.subarray(o, o + 65536));
          fsVerityDigest(z);
          createHash("sha256").update(z).digest();
        }
        secs += (performance.now() - t) / 1000;
      }
    }
  };
  visit(root);
  return secs;
}

function du(p: string): number {
  const r = spawnSync("du", ["-sb", p], { encoding: "utf8" });
  return Number(r.stdout.split("\t")[0]);
}

interface Row {
  name: string;
  /** Wall-clock seconds. */
  secs: number;
  /** CPU seconds (user + system) of the command and its children. */
  cpu: number;
  out: number;
}

/**
 * Where a tool writes: a freshly made ext4 file system (loop mount, needs
 * root), so every tool starts from the same clean state. On this shared
 * machine /tmp's ext4 has so many recently deleted inodes that each file
 * create costs ~0.3 ms of kernel CPU (ext4 recently_deleted/find_inode_bit),
 * 10× a fresh file system: unfair to any one-file-per-chunk layout. Without
 * root, a plain temp directory.
 */
function outputFs(bytes: number): { dir: string; done(): void } {
  const d = mkdtempSync(join(work, "out-"));
  if (process.getuid?.() !== 0) return { dir: d, done: () => rmSync(d, { recursive: true, force: true }) };
  const img = `${d}.img`;
  const size = Math.ceil((bytes * 1.5 + (256 << 20)) / (1 << 20));
  for (const cmd of [["truncate", "-s", `${size}M`, img], ["mkfs.ext4", "-q", "-F", img], ["mount", "-o", "loop", img, d]]) {
    const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: "pipe" });
    if (r.status !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  }
  return {
    dir: d,
    done() {
      spawnSync("umount", [d]);
      rmSync(img, { force: true });
      rmSync(d, { recursive: true, force: true });
    },
  };
}

/** Run under /usr/bin/time (wall and CPU, children included) writing into a fresh file system; measure the output. */
function run(name: string, bytes: number, cmd: (out: string) => string[]): Row {
  const fs = outputFs(bytes);
  try {
    const out = join(fs.dir, "out");
    spawnSync("sync");
    const timing = join(work, "time.txt");
    const c = cmd(out);
    const t = performance.now();
    const r = spawnSync("/usr/bin/time", ["-o", timing, "-f", "%U %S", ...c], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 });
    const secs = (performance.now() - t) / 1000;
    if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr.toString()}`);
    const [user, sys] = readFileSync(timing, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
    return { name, secs, cpu: user! + sys!, out: du(out) };
  } finally {
    fs.done();
  }
}

const work = mkdtempSync(join(tmpdir(), "pfs-bench-build-"));
const root = treeArg ?? join(work, "tree");
try {
  let tree: { files: number; bytes: number };
  if (existsSync(root) && readdirSync(root).length > 0) {
    tree = treeBytes(root);
    console.log(`tree: reusing ${root}`);
  } else {
    const t = performance.now();
    tree = generate(root, sizeMiB * 2 ** 20);
    console.log(`tree: generated in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  console.log(`tree: ${tree.files} files, ${(tree.bytes / 2 ** 20).toFixed(0)} MiB (${tree.bytes} bytes) at ${root}`);
  console.log(`machine: ${availableParallelism()} cores, load average before ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  // Warm the page cache so every tool reads the tree from memory.
  spawnSync("bash", ["-c", `tar -C '${root}' -cf - . > /dev/null`]);

  // The compiled CLI, as users run it (from the TS sources, tsx would add ~1 s of start-up per worker thread).
  const tsc = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO, stdio: "inherit" });
  if (tsc.status !== 0) throw new Error("npm run build failed");
  const cli = [process.execPath, join(REPO, "bin/puzzlefs.js")];
  const b = tree.bytes;
  const rows: Row[] = [
    run("puzzlefs build", b, (out) => [...cli, "build", root, `${out}:bench`]),
    run("puzzlefs build -c", b, (out) => [...cli, "build", "-c", root, `${out}:bench`]),
    run("mkfs.erofs", b, (out) => ["mkfs.erofs", "--quiet", out, root]),
    run("mkfs.erofs -zlz4", b, (out) => ["mkfs.erofs", "--quiet", "-zlz4", out, root]),
    run("tar -c | zstd -3", b, (out) => ["bash", "-c", `set -o pipefail; tar -C '${root}' -cf - . | zstd -3 -q -o '${out}'`]),
  ];
  const mbs = (r: Row) => tree.bytes / 1e6 / r.secs;
  console.log("");
  console.log(`${"tool".padEnd(20)} ${"wall".padStart(8)} ${"MB/s".padStart(6)} ${"CPU".padStart(8)} ${"MB/CPU-s".padStart(9)} ${"output".padStart(9)} ${"out/in".padStart(7)}`);
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(20),
        `${r.secs.toFixed(2)} s`.padStart(8),
        mbs(r).toFixed(0).padStart(6),
        `${r.cpu.toFixed(2)} s`.padStart(8),
        (tree.bytes / 1e6 / r.cpu).toFixed(0).padStart(9),
        `${(r.out / 2 ** 20).toFixed(0)} MiB`.padStart(9),
        (r.out / tree.bytes).toFixed(3).padStart(7),
      ].join(" "),
    );
  }
  const by = (n: string) => rows.find((r) => r.name === n)!;
  const tz = by("tar -c | zstd -3");
  console.log("");
  console.log(`build    / tar|zstd -3: ${(mbs(by("puzzlefs build")) / mbs(tz)).toFixed(2)}×`);
  console.log(`build -c / tar|zstd -3: ${(mbs(by("puzzlefs build -c")) / mbs(tz)).toFixed(2)}× wall (target ≥ 1×), ${(tz.cpu / by("puzzlefs build -c").cpu).toFixed(2)}× per CPU-second`);
  console.log(`build    / mkfs.erofs:  ${(mbs(by("puzzlefs build")) / mbs(by("mkfs.erofs"))).toFixed(2)}×`);
  // What no implementation of the format can avoid, spread perfectly over every core.
  const floor = formatFloorSecs(root);
  const cores = availableParallelism();
  console.log(
    `format floor: 4 KiB zstd frames + fs-verity + sha256 of every chunk = ${floor.toFixed(2)} CPU-s ` +
      `(tar|zstd -3 used ${tz.cpu.toFixed(2)}); on ${cores} cores build -c takes ≥ ${(floor / cores).toFixed(2)} s, ` +
      `so ≤ ${(tz.secs / (floor / cores)).toFixed(2)}× tar|zstd -3 here`,
  );
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
  else if (!treeArg) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
