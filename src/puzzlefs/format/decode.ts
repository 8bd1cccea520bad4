/**
 * Rootfs blob → domain value (types.ts), with the hand-written bounded
 * reader (capnp.ts, view.ts). It is the fast path; capnp-es generated code
 * (schema/metadata.ts) and `capnp convert` are its test oracles. Data fields
 * are zero-copy views of `bytes`. A null pointer decodes as the field's
 * default: empty list, empty Data, or (for `additional` and
 * `symlinkTarget`) null. Unknown union tags are a FORMAT error.
 */
import { PfsError } from "../../common/errors.ts";
import type { CapnpLimits, StructRef } from "./capnp.ts";
import { MODE_TAG, type Inode, type InodeMode, type Rootfs, type VerityData } from "./types.ts";
import { RootfsView } from "./view.ts";

export function decodeInode(v: RootfsView, s: StructRef): Inode {
  const msg = v.msg;
  const tag = v.modeTag(s);
  let mode: InodeMode;
  switch (tag) {
    case MODE_TAG.unknown:
      mode = { kind: "unknown" };
      break;
    case MODE_TAG.fifo:
      mode = { kind: "fifo" };
      break;
    case MODE_TAG.chr:
    case MODE_TAG.blk: {
      const d = v.device(s);
      mode = { kind: tag === MODE_TAG.chr ? "chr" : "blk", major: d.major, minor: d.minor };
      break;
    }
    case MODE_TAG.dir: {
      const d = v.dir(s);
      const entries = [];
      for (let i = 0; d.entries && i < d.entries.count; i++) {
        const e = msg.element(d.entries, i);
        entries.push({ ino: msg.u64(e, 0), name: v.dirEntryName(e) });
      }
      mode = { kind: "dir", entries, lookBelow: d.lookBelow };
      break;
    }
    case MODE_TAG.file: {
      const l = v.fileChunks(s);
      const chunks = [];
      for (let i = 0; l && i < l.count; i++) {
        const c = msg.element(l, i);
        const b = v.chunkBlob(c);
        chunks.push({ blob: { digest: b.digest, offset: b.offset, compressed: b.compressed }, len: v.chunkLen(c) });
      }
      mode = { kind: "file", chunks };
      break;
    }
    case MODE_TAG.lnk:
      mode = { kind: "lnk" };
      break;
    case MODE_TAG.sock:
      mode = { kind: "sock" };
      break;
    case MODE_TAG.wht:
      mode = { kind: "wht" };
      break;
    default:
      throw PfsError.format(`${v.name} Inode ${v.ino(s)}`, "unknown mode union tag", { offset: s.data + 8, expected: "0..8", got: tag });
  }
  const a = v.additional(s);
  let additional: Inode["additional"] = null;
  if (a) {
    const xl = v.xattrList(a);
    const xattrs = [];
    for (let i = 0; xl && i < xl.count; i++) {
      const [key, val] = v.pair(msg.element(xl, i), "Xattr");
      xattrs.push({ key, val });
    }
    additional = { xattrs, symlinkTarget: v.symlinkTarget(a) };
  }
  return { ino: v.ino(s), mode, uid: v.uid(s), gid: v.gid(s), permissions: v.permissions(s), additional };
}

export function decodeVerityData(v: RootfsView): VerityData[] {
  const l = v.verityList();
  const out: VerityData[] = [];
  for (let i = 0; l && i < l.count; i++) {
    const [digest, verity] = v.pair(v.msg.element(l, i), "VerityData");
    out.push({ digest, verity });
  }
  return out;
}

/** Decode a whole rootfs message. `name` is how errors call it (e.g. "rootfs sha256:…"). */
export function decodeRootfs(bytes: Uint8Array, name = "rootfs", limits: CapnpLimits = {}): Rootfs {
  const v = new RootfsView(bytes, name, limits);
  const metadatas = v.layers.map((l, layer) => {
    const inodes: Inode[] = new Array(l.count);
    for (let i = 0; i < l.count; i++) inodes[i] = decodeInode(v, v.inode(layer, i));
    return { inodes };
  });
  return { metadatas, fsVerityData: decodeVerityData(v), manifestVersion: v.manifestVersion };
}
