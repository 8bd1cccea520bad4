/**
 * The base image of a delta build (`build -b TAG`, spec §3.9): its decoded
 * rootfs, which the new rootfs re-encodes below the new layer, and the
 * `BaseLookup` the walk asks for inode numbers to reuse and names to white
 * out.
 *
 * Lookups follow upstream's reader (spec §2.4): an ino resolves in the first
 * layer from the top that has it, and a whiteout there means "absent"; a
 * path is resolved from the root one exact-byte name at a time (first match
 * in the directory's raw entry list, whiteout names included).
 */
import { ErrorCode, PfsError } from "../../common/errors.ts";
import { parseDigest } from "../../oci/digest.ts";
import type { OciLayout } from "../../oci/layout.ts";
import { MediaType } from "../../oci/manifest.ts";
import { decodeRootfs } from "../format/decode.ts";
import { MANIFEST_VERSION, type DirEntry, type Inode, type Rootfs } from "../format/types.ts";
import type { BaseLookup } from "./walk.ts";

export interface BaseImage {
  tag: string;
  /** Hex sha256 of the base manifest. */
  manifestHex: string;
  rootfs: Rootfs;
  lookup: BaseLookup;
}

const key = (name: Uint8Array): string => Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("latin1");

/** A BaseLookup over decoded layers (index 0 = top). */
export function baseLookup(layers: readonly (readonly Inode[])[]): BaseLookup {
  // ino → inode (null: whited out), first layer from the top wins.
  const byIno = new Map<bigint, Inode | null>();
  let maxInode = 1n;
  for (const layer of layers) {
    const here = new Map<bigint, Inode | null>();
    for (const n of layer) {
      const live = n.mode.kind === "wht" ? null : n;
      // Duplicate inos in one layer (spec §8): prefer a live one, as the reader does.
      if (!here.has(n.ino) || (here.get(n.ino) === null && live)) here.set(n.ino, live);
    }
    for (const [ino, n] of here) if (!byIno.has(ino)) byIno.set(ino, n);
    const last = layer[layer.length - 1];
    if (last && last.ino > maxInode) maxInode = last.ino;
  }
  const names = new Map<bigint, Map<string, bigint>>();
  const nameIndex = (dir: Inode & { mode: { kind: "dir" } }): Map<string, bigint> => {
    let m = names.get(dir.ino);
    if (!m) {
      m = new Map();
      for (const e of dir.mode.entries) if (!m.has(key(e.name))) m.set(key(e.name), e.ino);
      names.set(dir.ino, m);
    }
    return m;
  };
  return {
    maxInode,
    lookup(components: readonly Uint8Array[]): { ino: bigint; entries: readonly DirEntry[] | null } | null {
      let n = byIno.get(1n) ?? null;
      for (const c of components) {
        if (!n || n.mode.kind !== "dir") return null;
        const ino = nameIndex(n as Inode & { mode: { kind: "dir" } }).get(key(c));
        if (ino === undefined) return null;
        n = byIno.get(ino) ?? null;
      }
      if (!n) return null;
      return { ino: n.ino, entries: n.mode.kind === "dir" ? n.mode.entries : null };
    },
  };
}

/** Open `tag` of `layout` as the base of a delta build. */
export async function openBase(layout: OciLayout, tag: string): Promise<BaseImage> {
  let m;
  try {
    m = await layout.readManifest(tag);
  } catch (e) {
    if (e instanceof PfsError && e.code === ErrorCode.NOT_FOUND && e.message.startsWith("tag ")) {
      throw new PfsError(ErrorCode.NOT_FOUND, `base layer: ${e.message}`, { hint: e.hint ?? "build the base image first, or fix the -b tag", data: e.data });
    }
    throw e;
  }
  const what = `base image ${JSON.stringify(tag)}`;
  const desc = m.manifest.layers.find((l) => l.mediaType === MediaType.ROOTFS);
  if (!desc) throw PfsError.format(`${what} manifest sha256:${m.hex}`, `no layer has media type ${MediaType.ROOTFS}; not a PuzzleFS image`);
  const hex = parseDigest(desc.digest, `${what} rootfs layer`);
  const rwhat = `${what} rootfs blob sha256:${hex}`;
  const bytes = await layout.blobs.get(hex, { what: rwhat, expectedSize: desc.size, maxSize: 0x7fffffff });
  const rootfs = decodeRootfs(bytes, rwhat);
  if (rootfs.manifestVersion !== MANIFEST_VERSION) {
    throw PfsError.format(rwhat, "invalid image version (manifestVersion)", { expected: MANIFEST_VERSION, got: rootfs.manifestVersion });
  }
  return { tag, manifestHex: m.hex, rootfs, lookup: baseLookup(rootfs.metadatas.map((v) => v.inodes)) };
}

const sameBytes = (a: Uint8Array | null, b: Uint8Array | null): boolean =>
  a === null || b === null ? a === b : Buffer.compare(a, b) === 0;

function sameInode(a: Inode, b: Inode): boolean {
  if (a.ino !== b.ino || a.uid !== b.uid || a.gid !== b.gid || a.permissions !== b.permissions) return false;
  const x = a.additional;
  const y = b.additional;
  if (x === null || y === null) {
    if (x !== y) return false;
  } else if (
    !sameBytes(x.symlinkTarget, y.symlinkTarget) ||
    x.xattrs.length !== y.xattrs.length ||
    x.xattrs.some((v, i) => !sameBytes(v.key, y.xattrs[i]!.key) || !sameBytes(v.val, y.xattrs[i]!.val))
  ) {
    return false;
  }
  const m = a.mode;
  const n = b.mode;
  switch (m.kind) {
    case "chr":
    case "blk":
      return n.kind === m.kind && n.major === m.major && n.minor === m.minor;
    case "dir":
      return (
        n.kind === "dir" &&
        n.lookBelow === m.lookBelow &&
        n.entries.length === m.entries.length &&
        m.entries.every((e, i) => e.ino === n.entries[i]!.ino && sameBytes(e.name, n.entries[i]!.name))
      );
    case "file":
      return (
        n.kind === "file" &&
        n.chunks.length === m.chunks.length &&
        m.chunks.every((c, i) => {
          const d = n.chunks[i]!;
          return c.len === d.len && c.blob.offset === d.blob.offset && c.blob.compressed === d.blob.compressed && sameBytes(c.blob.digest, d.blob.digest);
        })
      );
    default:
      return n.kind === m.kind;
  }
}

/** Value equality of two inode vectors (upstream: `metadatas.contains(&new)`, spec §3.9). */
export function sameLayer(a: readonly Inode[], b: readonly Inode[]): boolean {
  return a.length === b.length && a.every((n, i) => sameInode(n, b[i]!));
}
