/**
 * Deterministic pseudo-random Rootfs values (seeded), shared by the encoder
 * test and the fixture generator `scripts/capnp-rust-oracle/gen-fixtures.ts`,
 * which has capnp-rust encode the same values. Also the text form that the
 * Rust oracle reads.
 */
import type { Inode, InodeMode, Rootfs } from "../../src/puzzlefs/format/types.ts";

/** xorshift32: tiny, deterministic, good enough for shapes. */
export function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

export interface GenShape {
  seed: number;
  layers: number;
  inodes: number;
  /** Upper bound for xattr value sizes: large values force new segments. */
  maxValue: number;
  maxEntries: number;
  verity: number;
}

export const ORACLE_CASES: GenShape[] = [
  { seed: 1, layers: 1, inodes: 30, maxValue: 40, maxEntries: 6, verity: 3 },
  { seed: 2, layers: 1, inodes: 260, maxValue: 40, maxEntries: 6, verity: 20 },
  { seed: 3, layers: 2, inodes: 700, maxValue: 200, maxEntries: 30, verity: 50 },
  { seed: 4, layers: 3, inodes: 1500, maxValue: 3000, maxEntries: 12, verity: 100 },
  { seed: 5, layers: 1, inodes: 400, maxValue: 40_000, maxEntries: 300, verity: 400 },
  { seed: 6, layers: 4, inodes: 120, maxValue: 9000, maxEntries: 3, verity: 0 },
  { seed: 7, layers: 1, inodes: 3000, maxValue: 16, maxEntries: 4, verity: 700 },
  { seed: 8, layers: 0, inodes: 0, maxValue: 0, maxEntries: 0, verity: 5 },
];

export function genRootfs(s: GenShape): Rootfs {
  const r = rng(s.seed);
  const bytes = (max: number): Uint8Array => {
    const n = max === 0 ? 0 : r(max + 1);
    const b = new Uint8Array(n);
    // Long values get a cheap pattern so the committed fixtures compress well;
    // only their sizes shape the layout.
    if (n > 64) b.fill(r(256));
    else for (let i = 0; i < n; i++) b[i] = r(256);
    return b;
  };
  const big = (): bigint => (BigInt(r(0x10000)) << 48n) | (BigInt(r(0x1000000)) << 24n) | BigInt(r(0x1000000));
  const mode = (): InodeMode => {
    switch (r(9)) {
      case 0:
        return { kind: "unknown" };
      case 1:
        return { kind: "fifo" };
      case 2:
        return { kind: r(2) ? "chr" : "blk", major: big(), minor: big() };
      case 3:
      case 4:
        return {
          kind: "dir",
          lookBelow: r(4) === 0,
          entries: Array.from({ length: r(s.maxEntries + 1) }, () => ({ ino: big(), name: bytes(20) })),
        };
      case 5:
      case 6:
        return {
          kind: "file",
          chunks: Array.from({ length: r(5) }, () => ({
            len: big(),
            blob: { digest: fixed(r, 32), offset: big(), compressed: r(2) === 1 },
          })),
        };
      case 7:
        return { kind: r(2) ? "lnk" : "sock" };
      default:
        return { kind: "wht" };
    }
  };
  const metadatas = Array.from({ length: s.layers }, () => ({
    inodes: Array.from(
      { length: s.inodes },
      (_, i): Inode => ({
        ino: BigInt(i + 1),
        mode: mode(),
        uid: r(0x10000) * 0x10000 + r(0x10000),
        gid: r(70000),
        permissions: r(0x10000),
        additional:
          r(3) === 0
            ? {
                xattrs: Array.from({ length: r(4) }, () => ({ key: bytes(24), val: bytes(s.maxValue) })),
                symlinkTarget: r(2) ? bytes(300) : null,
              }
            : null,
      }),
    ),
  }));
  const fsVerityData = Array.from({ length: s.verity }, () => ({ digest: fixed(r, 32), verity: fixed(r, 32) }));
  return { metadatas, fsVerityData, manifestVersion: 3n };
}

function fixed(r: (n: number) => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r(256);
  return b;
}

const hx = (b: Uint8Array): string => (b.length === 0 ? "-" : Buffer.from(b).toString("hex"));

/** The whitespace-separated form read by scripts/capnp-rust-oracle. */
export function toOracleText(rootfs: Rootfs): string {
  const out: string[] = [`rootfs ${rootfs.manifestVersion} ${rootfs.metadatas.length}`];
  for (const layer of rootfs.metadatas) {
    out.push(String(layer.inodes.length));
    for (const n of layer.inodes) {
      const m = n.mode;
      let line = `${n.ino} ${n.uid} ${n.gid} ${n.permissions} ${m.kind}`;
      if (m.kind === "chr" || m.kind === "blk") line += ` ${m.major} ${m.minor}`;
      if (m.kind === "dir") line += ` ${m.lookBelow ? 1 : 0} ${m.entries.length} ${m.entries.map((e) => `${e.ino} ${hx(e.name)}`).join(" ")}`;
      if (m.kind === "file")
        line += ` ${m.chunks.length} ${m.chunks.map((c) => `${c.len} ${hx(c.blob.digest)} ${c.blob.offset} ${c.blob.compressed ? 1 : 0}`).join(" ")}`;
      if (n.additional) {
        const a = n.additional;
        line += ` add ${a.xattrs.length} ${a.xattrs.map((x) => `${hx(x.key)} ${hx(x.val)}`).join(" ")}`;
        line += a.symlinkTarget ? ` target ${hx(a.symlinkTarget)}` : " notarget";
      } else line += " noadd";
      out.push(line);
    }
  }
  out.push(`${rootfs.fsVerityData.length} ${rootfs.fsVerityData.map((v) => `${hx(v.digest)} ${hx(v.verity)}`).join(" ")}`);
  return out.join("\n") + "\n";
}
