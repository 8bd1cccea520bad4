/**
 * Test-only oracles for the rootfs codec: decode with capnp-es (the generated
 * code) and with the C++ reference (`capnp convert binary:json`), each into the
 * domain types, so an encoder under test is judged by decoders it did not write.
 */
import { execFileSync } from "node:child_process";
import * as $ from "capnp-es";
import * as S from "../../src/puzzlefs/format/schema/metadata.ts";
import type { Inode, InodeMode, Rootfs } from "../../src/puzzlefs/format/types.ts";

const u8 = (d: $.Data): Uint8Array => new Uint8Array(d.toUint8Array());

function modeOf(m: S.Inode_Mode): InodeMode {
  switch (m.which()) {
    case S.Inode_Mode.UNKNOWN:
      return { kind: "unknown" };
    case S.Inode_Mode.FIFO:
      return { kind: "fifo" };
    case S.Inode_Mode.CHR:
      return { kind: "chr", major: m.chr.major, minor: m.chr.minor };
    case S.Inode_Mode.BLK:
      return { kind: "blk", major: m.blk.major, minor: m.blk.minor };
    case S.Inode_Mode.DIR:
      return {
        kind: "dir",
        lookBelow: m.dir.lookBelow,
        entries: m.dir.entries.map((e) => ({ ino: e.ino, name: u8(e.name) })),
      };
    case S.Inode_Mode.FILE:
      return {
        kind: "file",
        chunks: m.file.map((c) => ({
          len: c.len,
          blob: { digest: u8(c.blob.digest), offset: c.blob.offset, compressed: c.blob.compressed },
        })),
      };
    case S.Inode_Mode.LNK:
      return { kind: "lnk" };
    case S.Inode_Mode.SOCK:
      return { kind: "sock" };
    case S.Inode_Mode.WHT:
      return { kind: "wht" };
    default:
      throw new Error(`unknown mode tag ${m.which()}`);
  }
}

/** Decode with capnp-es into domain values. */
export function capnpEsDecode(bytes: Uint8Array): Rootfs {
  const msg = new $.Message(bytes, false);
  (msg as unknown as { _capnp: { traversalLimit: number } })._capnp.traversalLimit = Number.POSITIVE_INFINITY;
  const r = msg.getRoot(S.Rootfs);
  return {
    manifestVersion: r.manifestVersion,
    metadatas: r.metadatas.map((v) => ({
      inodes: v.inodes.map(
        (n): Inode => ({
          ino: n.ino,
          mode: modeOf(n.mode),
          uid: n.uid,
          gid: n.gid,
          permissions: n.permissions,
          additional: n._hasAdditional()
            ? {
                xattrs: n.additional.xattrs.map((x) => ({ key: u8(x.key), val: u8(x.val) })),
                symlinkTarget: n.additional._hasSymlinkTarget() ? u8(n.additional.symlinkTarget) : null,
              }
            : null,
        }),
      ),
    })),
    fsVerityData: r.fsVerityData.map((v) => ({ digest: u8(v.digest), verity: u8(v.verity) })),
  };
}

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const bytesJ = (a: number[] | undefined): Uint8Array => new Uint8Array(a ?? []);
const big = (s: string | undefined): bigint => BigInt(s ?? 0);

function modeJ(m: J): InodeMode {
  const k = Object.keys(m ?? { unknown: null })[0]!;
  const v = m?.[k];
  switch (k) {
    case "chr":
    case "blk":
      return { kind: k, major: big(v.major), minor: big(v.minor) };
    case "dir":
      return {
        kind: "dir",
        lookBelow: v.lookBelow ?? false,
        entries: (v.entries ?? []).map((e: J) => ({ ino: big(e.ino), name: bytesJ(e.name) })),
      };
    case "file":
      return {
        kind: "file",
        chunks: (v ?? []).map((c: J) => ({
          len: big(c.len),
          blob: { digest: bytesJ(c.blob.digest), offset: big(c.blob.offset), compressed: c.blob.compressed ?? false },
        })),
      };
    default:
      return { kind: k } as InodeMode;
  }
}

/**
 * Decode with the C++ reference implementation. Its JSON omits default
 * values; a Data pointer that is null and one that is empty both print as
 * absent/[] so `symlinkTarget` presence is taken from the key.
 */
export function capnpConvertDecode(bytes: Uint8Array): Rootfs {
  const json = execFileSync("capnp", ["convert", "binary:json", "schemas/metadata.capnp", "Rootfs"], {
    input: bytes,
    maxBuffer: 1 << 30,
  }).toString("utf8");
  const r = JSON.parse(json) as J;
  return {
    manifestVersion: big(r.manifestVersion),
    metadatas: (r.metadatas ?? []).map((v: J) => ({
      inodes: (v.inodes ?? []).map(
        (n: J): Inode => ({
          ino: big(n.ino),
          mode: modeJ(n.mode),
          uid: n.uid ?? 0,
          gid: n.gid ?? 0,
          permissions: n.permissions ?? 0,
          additional: n.additional
            ? {
                xattrs: (n.additional.xattrs ?? []).map((x: J) => ({ key: bytesJ(x.key), val: bytesJ(x.val) })),
                symlinkTarget: "symlinkTarget" in n.additional ? bytesJ(n.additional.symlinkTarget) : null,
              }
            : null,
        }),
      ),
    })),
    fsVerityData: (r.fsVerityData ?? []).map((v: J) => ({ digest: bytesJ(v.digest), verity: bytesJ(v.verity) })),
  };
}
