/**
 * A root-filesystem-shaped PuzzleFS image for the registry suites while
 * `puzzlefs build` is not on main: /etc with os-release and small config
 * files, /usr/lib and /usr/bin with larger binaries-like files (random bytes
 * in 64 KiB chunks), /var/log. Written with the test image writer
 * (test/helpers/test-image.ts), which the reader's tests check against
 * capnp oracles. Deterministic for a seed.
 */
import { createHash } from "node:crypto";
import { I, rootfs, writeImage } from "../../test/helpers/test-image.ts";

export interface SyntheticImage {
  dir: string;
  tag: string;
  /** Path → content, for every regular file. */
  files: Map<string, Buffer>;
}

/** xorshift stream: fast, seedable filler bytes. */
function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, Math.min(i, n - 4));
  }
  return out;
}

const CHUNK = 65536;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export async function makeSyntheticRootfs(dir: string, tag = "rootfs", opts: { libFiles?: number; seed?: number } = {}): Promise<SyntheticImage> {
  const seed = opts.seed ?? 7;
  const files = new Map<string, Buffer>();
  files.set("/etc/os-release", Buffer.from('PRETTY_NAME="PuzzleFS synthetic 1"\nNAME="PuzzleFS synthetic"\nVERSION_ID="1"\nID=puzzlefs\n'));
  files.set("/etc/hostname", Buffer.from("synthetic\n"));
  for (let i = 0; i < 40; i++) files.set(`/etc/conf${i}.conf`, Buffer.from(`# config ${i}\n${"key=value\n".repeat(50 + i)}`));
  for (let i = 0; i < (opts.libFiles ?? 120); i++) files.set(`/usr/lib/lib${i}.so`, bytes(seed * 1000 + i, 32768 + ((i * 7919) % 200_000)));
  for (let i = 0; i < 40; i++) files.set(`/usr/bin/tool${i}`, bytes(seed * 5000 + i, 20000 + i * 1000));
  files.set("/var/log/empty.log", Buffer.alloc(0));

  // Directories and inode numbers: 1 = /, then directories, then files in map order.
  const dirs = new Map<string, number>([["/", 1]]);
  let next = 2;
  for (const p of files.keys()) {
    const parts = p.split("/").slice(1, -1);
    for (let k = 1; k <= parts.length; k++) {
      const d = `/${parts.slice(0, k).join("/")}`;
      if (!dirs.has(d)) dirs.set(d, next++);
    }
  }
  const entries = new Map<number, Array<[string, number]>>();
  for (const [d, ino] of dirs) {
    entries.set(ino, []);
    if (d !== "/") {
      const parent = d.slice(0, d.lastIndexOf("/")) || "/";
      entries.get(dirs.get(parent)!)!.push([d.slice(d.lastIndexOf("/") + 1), ino]);
    }
  }
  const chunks = new Map<string, Uint8Array>();
  const fileInodes = [];
  for (const [p, data] of files) {
    const ino = next++;
    const parent = p.slice(0, p.lastIndexOf("/")) || "/";
    entries.get(dirs.get(parent)!)!.push([p.slice(p.lastIndexOf("/") + 1), ino]);
    const specs = [];
    for (let o = 0; o < data.length; o += CHUNK) {
      const c = data.subarray(o, Math.min(data.length, o + CHUNK));
      const hex = sha(c);
      chunks.set(hex, new Uint8Array(c));
      specs.push({ hex, len: c.length });
    }
    fileInodes.push(I.file(ino, specs, { permissions: p.startsWith("/usr/bin") ? 0o755 : 0o644 }));
  }
  const dirInodes = [...dirs.values()].map((ino) => I.dir(ino, entries.get(ino)!));
  await writeImage(dir, tag, rootfs([[...dirInodes, ...fileInodes]]), [...chunks.values()].map((data) => ({ data })));
  return { dir, tag, files };
}
