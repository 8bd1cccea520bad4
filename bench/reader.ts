/**
 * Reader benchmark (not part of the unit suite): a synthetic rootfs with
 * ~100 000 inodes (5% directories, files with one or two chunks, some
 * symlinks with xattrs), then time
 *   - decodeRootfs (full domain decode, hand-written reader)
 *   - capnp-es decode of the same bytes (the oracle, for comparison)
 *   - openImage (sha256 of the rootfs + validating walk + index)
 *   - node() for every inode, and reading every file once
 * and the memory the opened image holds.
 *
 *   node --expose-gc --import tsx bench/reader.ts [INODES]
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeRootfs } from "../src/puzzlefs/format/decode.ts";
import type { Inode } from "../src/puzzlefs/format/types.ts";
import { openImage } from "../src/puzzlefs/reader/image.ts";
import { scatterEncode } from "../test/helpers/capnp-writer.ts";
import { decodeWithCapnpEs } from "../test/helpers/capnp-oracle.ts";
import { rootfs, writeImage } from "../test/helpers/test-image.ts";

const N = Number(process.argv[2] ?? 100_000);
const enc = new TextEncoder();
const rawGc = (globalThis as { gc?: () => void }).gc;
/** Full GC, twice, with a turn of the event loop between (ArrayBuffer backing stores are released asynchronously). */
async function gc(): Promise<void> {
  if (!rawGc) return;
  for (let i = 0; i < 3; i++) {
    rawGc();
    await new Promise((r) => setTimeout(r, 20));
  }
}
const ms = (t: number) => `${(performance.now() - t).toFixed(0)} ms`;
const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function synth(n: number, chunkHex: string, chunkLen: number): Inode[] {
  const dirs = Math.max(1, Math.floor(n / 20));
  const inodes: Inode[] = [];
  const children: Array<Array<[Uint8Array, bigint]>> = Array.from({ length: dirs }, () => []);
  for (let ino = 2; ino <= n; ino++) {
    const parent = ino <= dirs ? Math.floor((ino - 2) / 8) : (ino * 7919) % dirs; // dirs form a tree rooted at ino 1
    children[parent]!.push([enc.encode(ino <= dirs ? `dir-${ino}` : `file-${ino}.dat`), BigInt(ino)]);
  }
  for (let ino = 1; ino <= n; ino++) {
    const base = { ino: BigInt(ino), uid: 1000, gid: 1000, additional: null as Inode["additional"] };
    if (ino <= dirs) {
      const entries = children[ino - 1]!.sort((a, b) => Buffer.compare(a[0], b[0])).map(([name, i]) => ({ name, ino: i }));
      inodes.push({ ...base, permissions: 0o755, mode: { kind: "dir", entries, lookBelow: false } });
    } else if (ino % 20 === 0) {
      inodes.push({ ...base, permissions: 0o777, mode: { kind: "lnk" }, additional: { xattrs: [{ key: enc.encode("user.x"), val: enc.encode("y") }], symlinkTarget: enc.encode(`../target/${ino}`) } });
    } else {
      const digest = Buffer.from(chunkHex, "hex");
      const off = (ino * 37) % (chunkLen - 200);
      const chunks = [{ blob: { digest, offset: BigInt(off), compressed: false }, len: 100n }];
      if (ino % 3 === 0) chunks.push({ blob: { digest, offset: BigInt(off + 100), compressed: false }, len: 100n });
      inodes.push({ ...base, permissions: 0o644, mode: { kind: "file", chunks } });
    }
  }
  return inodes;
}

/** Build the rootfs bytes in their own scope so the value graph is garbage before anything is timed. */
function makeRootfs(chunkHex: string, chunkLen: number): Uint8Array {
  return scatterEncode(rootfs([synth(N, chunkHex, chunkLen)]), { seed: 1, far: 0, segmentWords: 1 << 26 });
}

const dir = mkdtempSync(join(tmpdir(), "pfs-bench-"));
try {
  const chunk = new Uint8Array(256 * 1024).map((_, i) => (i * 31) & 0xff);
  const chunkHex = createHash("sha256").update(chunk).digest("hex");
  let bytes: Uint8Array | null = makeRootfs(chunkHex, chunk.length);
  console.log(`rootfs: ${N} inodes, ${mb(bytes.length)}`);
  await writeImage(dir, "bench", bytes, [{ data: chunk }]);
  await gc();
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    decodeRootfs(bytes);
    console.log(`decodeRootfs (hand-written)     ${ms(t)}`);
  }
  if (process.env.BENCH_CAPNP_ES !== "0") {
    const t = performance.now();
    decodeWithCapnpEs(bytes);
    console.log(`decode with capnp-es (oracle)   ${ms(t)}`);
  }
  bytes = null;
  await gc();
  const before = process.memoryUsage();
  let t = performance.now();
  const img = await openImage(dir, "bench");
  console.log(`openImage (hash + walk + index) ${ms(t)}; nodes ${img.tree.nodeCount}`);
  await gc();
  const after = process.memoryUsage();
  const held = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  console.log(`held after open: ${mb(held)} = ${(held / N).toFixed(0)} B/inode (rootfs message ${mb(img.rootfs.size)} included)`);
  t = performance.now();
  let files = 0;
  for (let ino = 1; ino <= N; ino++) if (img.tree.node(ino).kind === "file") files++;
  console.log(`node() x ${N}                  ${ms(t)}`);
  t = performance.now();
  for (let ino = 1; ino <= N; ino++) if (img.tree.kind(ino) === "file") await img.tree.readFile(ino, 0, 1 << 20);
  console.log(`readFile x ${files} (cached chunk)  ${ms(t)}; blob opens ${img.layout.blobs.stats.opens}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
