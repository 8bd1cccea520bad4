/**
 * Oracles for the rootfs decoder: capnp-es generated code and Debian's
 * `capnp convert binary:json`, both turned into one comparable plain-JSON
 * shape (bigints as decimal strings, bytes as hex) that our domain values
 * also convert to.
 */
import { execFileSync } from "node:child_process";
import * as $ from "capnp-es";
import * as S from "../../src/puzzlefs/format/schema/metadata.ts";
import type { Inode, Rootfs } from "../../src/puzzlefs/format/types.ts";

const hex = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString("hex") : "");

export type Comparable = ReturnType<typeof comparable>;

/** Domain value → comparable JSON. */
export function comparable(r: Rootfs) {
  return {
    manifestVersion: String(r.manifestVersion),
    metadatas: r.metadatas.map((m) => m.inodes.map(inodeJson)),
    fsVerityData: r.fsVerityData.map((v) => ({ digest: hex(v.digest), verity: hex(v.verity) })),
  };
}

function inodeJson(i: Inode) {
  const m = i.mode;
  let mode: unknown;
  switch (m.kind) {
    case "chr":
    case "blk":
      mode = { [m.kind]: { major: String(m.major), minor: String(m.minor) } };
      break;
    case "dir":
      mode = { dir: { entries: m.entries.map((e) => ({ ino: String(e.ino), name: hex(e.name) })), lookBelow: m.lookBelow } };
      break;
    case "file":
      mode = { file: m.chunks.map((c) => ({ digest: hex(c.blob.digest), offset: String(c.blob.offset), compressed: c.blob.compressed, len: String(c.len) })) };
      break;
    default:
      mode = { [m.kind]: null };
  }
  return {
    ino: String(i.ino),
    mode,
    uid: i.uid,
    gid: i.gid,
    permissions: i.permissions,
    additional: i.additional
      ? { xattrs: i.additional.xattrs.map((x) => ({ key: hex(x.key), val: hex(x.val) })), symlinkTarget: i.additional.symlinkTarget ? hex(i.additional.symlinkTarget) : null }
      : null,
  };
}

const data = (has: boolean, d: () => $.Data) => (has ? new Uint8Array(d().toUint8Array()) : new Uint8Array(0));

/** Decode with capnp-es (the generated code) into the domain shape. */
export function decodeWithCapnpEs(bytes: Uint8Array): Rootfs {
  const msg = new $.Message(bytes, false);
  (msg as unknown as { _capnp: { traversalLimit: number } })._capnp.traversalLimit = Number.POSITIVE_INFINITY;
  const root = msg.getRoot(S.Rootfs);
  const metadatas = root.metadatas.map((iv) => ({
    inodes: iv.inodes.map((n): Inode => {
      const md = n.mode;
      let mode: Inode["mode"];
      switch (md.which()) {
        case S.Inode_Mode.CHR:
          mode = { kind: "chr", major: md.chr.major, minor: md.chr.minor };
          break;
        case S.Inode_Mode.BLK:
          mode = { kind: "blk", major: md.blk.major, minor: md.blk.minor };
          break;
        case S.Inode_Mode.DIR:
          mode = { kind: "dir", entries: md.dir.entries.map((e) => ({ ino: e.ino, name: data(e._hasName(), () => e.name) })), lookBelow: md.dir.lookBelow };
          break;
        case S.Inode_Mode.FILE:
          mode = {
            kind: "file",
            chunks: md.file.map((c) => ({ blob: { digest: data(c.blob._hasDigest(), () => c.blob.digest), offset: c.blob.offset, compressed: c.blob.compressed }, len: c.len })),
          };
          break;
        default:
          mode = { kind: (["unknown", "fifo", "chr", "dir", "blk", "file", "lnk", "sock", "wht"] as const)[md.which()] as "fifo" };
      }
      const a = n._hasAdditional() ? n.additional : null;
      return {
        ino: n.ino,
        mode,
        uid: n.uid,
        gid: n.gid,
        permissions: n.permissions,
        additional: a
          ? {
              xattrs: a.xattrs.map((x) => ({ key: data(x._hasKey(), () => x.key), val: data(x._hasVal(), () => x.val) })),
              symlinkTarget: a._hasSymlinkTarget() ? new Uint8Array(a.symlinkTarget.toUint8Array()) : null,
            }
          : null,
      };
    }),
  }));
  const fsVerityData = root.fsVerityData.map((v) => ({ digest: data(v._hasDigest(), () => v.digest), verity: data(v._hasVerity(), () => v.verity) }));
  return { metadatas, fsVerityData, manifestVersion: root.manifestVersion };
}

type J = Record<string, unknown>;
const jhex = (a: unknown) => (Array.isArray(a) ? Buffer.from(a as number[]).toString("hex") : "");

/** `capnp convert binary:json` (Debian capnproto) → comparable JSON. */
export function capnpConvertComparable(bytes: Uint8Array): Comparable {
  const out = execFileSync("capnp", ["convert", "--quiet", "binary:json", "schemas/metadata.capnp", "Rootfs"], { input: bytes, maxBuffer: 1 << 28 });
  const j = JSON.parse(out.toString()) as J;
  const inode = (n: J) => {
    const [kind, p] = Object.entries((n.mode as J | undefined) ?? { unknown: null })[0] as [string, J | J[] | null];
    let mode: unknown = { [kind]: null };
    if (kind === "chr" || kind === "blk") mode = { [kind]: { major: String((p as J)?.major ?? "0"), minor: String((p as J)?.minor ?? "0") } };
    if (kind === "dir") {
      const d = (p ?? {}) as J;
      mode = { dir: { entries: ((d.entries as J[]) ?? []).map((e) => ({ ino: String(e.ino ?? "0"), name: jhex(e.name) })), lookBelow: d.lookBelow ?? false } };
    }
    if (kind === "file") {
      mode = {
        file: ((p as J[]) ?? []).map((c) => {
          const b = (c.blob as J) ?? {};
          return { digest: jhex(b.digest), offset: String(b.offset ?? "0"), compressed: b.compressed ?? false, len: String(c.len ?? "0") };
        }),
      };
    }
    const a = n.additional as J | undefined;
    return {
      ino: String(n.ino ?? "0"),
      mode,
      uid: (n.uid as number) ?? 0,
      gid: (n.gid as number) ?? 0,
      permissions: (n.permissions as number) ?? 0,
      additional: a
        ? { xattrs: ((a.xattrs as J[]) ?? []).map((x) => ({ key: jhex(x.key), val: jhex(x.val) })), symlinkTarget: a.symlinkTarget === undefined ? null : jhex(a.symlinkTarget) }
        : null,
    };
  };
  return {
    manifestVersion: String(j.manifestVersion ?? "0"),
    metadatas: ((j.metadatas as J[]) ?? []).map((m) => ((m.inodes as J[]) ?? []).map(inode)),
    fsVerityData: ((j.fsVerityData as J[]) ?? []).map((v) => ({ digest: jhex(v.digest), verity: jhex(v.verity) })),
  };
}
