/**
 * Linux calls Node lacks (xattrs on raw-byte paths, mknod) and three hot loops
 * of `build` (FastCDC, fs-verity, the zstd seekable encoder), from the small
 * N-API addon in native/pfs_native.c.
 *
 * Why an addon: @napi-rs/xattr takes paths and attribute names as JS strings,
 * so a file whose name is not valid UTF-8 (spec §2.3: names are raw bytes)
 * cannot be reached, and Node has no mknod at all. The addon is compiled on
 * first use with the system C compiler against Node's own headers (≈0.3 s,
 * no node-gyp, no network) and cached under build/native/, keyed by a hash of
 * its source. Without a compiler we fall back to @napi-rs/xattr (UTF-8 paths
 * only, with a clear error otherwise) and to mknod(1) for device nodes.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PfsError, ErrorCode } from "../common/errors.ts";
import { log } from "../common/debug.ts";

interface Addon {
  llistxattr(path: Buffer): Buffer[];
  lgetxattr(path: Buffer, name: Buffer): Buffer;
  lsetxattr(path: Buffer, name: Buffer, value: Buffer): void;
  mknodat(dirfd: number, name: Buffer, mode: number, major: number, minor: number): void;
  cdcInit(gear: Buffer): void;
  cdcCut(buf: Uint8Array, start: number, n: number, min: number, avg: number, max: number, maskS: number, maskL: number): [number, number, number];
  fsverity(buf: Uint8Array): Buffer;
  scandir(dir: Buffer): ScannedDir;
  readfile(path: Buffer, dest: Uint8Array): number;
  /** Only when built with zstd-napi's libzstd (see zstdArchive). */
  seekable?: (buf: Uint8Array) => Buffer;
}

const require = createRequire(import.meta.url);
/** Package root: this file is src/puzzlefs/native.ts (or dist/puzzlefs/native.js). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const AT_FDCWD = -100;

let addon: Addon | null | undefined;

/**
 * libzstd as zstd-napi built it (its static archive and headers), so the C
 * seekable encoder makes the same bytes as the JS one through zstd-napi.
 * Absent when zstd-napi came as a prebuilt binary: the addon is then built
 * without `seekable` and the JS encoder is used.
 */
function zstdArchive(): { lib: string; include: string } | null {
  try {
    const dir = dirname(require.resolve("zstd-napi/package.json"));
    const lib = join(dir, "build", "Release", "zstd.a");
    const include = join(dir, "deps", "zstd", "lib");
    return existsSync(lib) && existsSync(join(include, "zstd.h")) ? { lib, include } : null;
  } catch {
    return null;
  }
}

function compile(): Addon {
  const src = join(ROOT, "native", "pfs_native.c");
  const code = readFileSync(src);
  const zstd = zstdArchive();
  const hash = createHash("sha256")
    .update(code)
    .update(process.versions.napi ?? "")
    .update(zstd ? readFileSync(zstd.lib) : "")
    .digest("hex")
    .slice(0, 16);
  const out = join(ROOT, "build", "native", `pfs_native-${hash}.node`);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    const include = [join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"].find((d) =>
      existsSync(join(d, "node_api.h")),
    );
    if (!include) throw new Error("Node headers (node_api.h) not found");
    // Build under a unique name, then rename: concurrent test workers may race here.
    const tmp = `${out}.${process.pid}.tmp`;
    const withZstd = zstd ? ["-DPFS_ZSTD", `-I${zstd.include}`] : [];
    // --exclude-libs: libzstd's symbols stay private to the addon.
    const link = zstd ? [zstd.lib, "-Wl,--exclude-libs,ALL"] : [];
    execFileSync(
      process.env.CC ?? "cc",
      ["-O2", "-shared", "-fPIC", "-DNODE_GYP_MODULE_NAME=pfs_native", `-I${include}`, ...withZstd, "-o", tmp, src, ...link],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    renameSync(tmp, out);
    log.pfs("native: built %s%s", out, zstd ? " (with zstd)" : "");
  }
  return require(out) as Addon;
}

function native(): Addon | null {
  if (addon === undefined) {
    try {
      addon = compile();
    } catch (e) {
      log.pfs("native: addon unavailable (%s); using @napi-rs/xattr and mknod(1)", (e as Error).message);
      addon = null;
    }
  }
  return addon;
}

/** True when the compiled addon is in use (tests assert it is, on CI). */
export function hasNativeAddon(): boolean {
  return native() !== null;
}

const utf8 = (b: Buffer, what: string): string => {
  const s = b.toString("utf8");
  if (!Buffer.from(s, "utf8").equals(b)) {
    throw new PfsError(ErrorCode.UNSUPPORTED, `${what}: xattrs of a non-UTF-8 path need the native helper`, {
      hint: "install a C compiler (cc) so native/pfs_native.c can be built",
    });
  }
  return s;
};

type XattrLib = typeof import("@napi-rs/xattr");
let xattrLib: XattrLib | undefined;
const lib = (): XattrLib => (xattrLib ??= require("@napi-rs/xattr") as XattrLib);

/**
 * The extended attributes of `path` itself (symlinks not followed), names in
 * llistxattr order (spec §2.3), values raw.
 */
export function readXattrs(path: Buffer): Array<{ key: Buffer; val: Buffer }> {
  const a = native();
  try {
    if (a) return a.llistxattr(path).map((key) => ({ key, val: a.lgetxattr(path, key) }));
    const p = utf8(path, path.toString());
    return lib()
      .listAttributesSync(p)
      .map((k) => ({ key: Buffer.from(k), val: lib().getAttributeSync(p, k) ?? Buffer.alloc(0) }));
  } catch (e) {
    if (e instanceof PfsError) throw e;
    throw PfsError.io(`reading xattrs of ${path.toString()}`, e);
  }
}

/** Set one xattr on `path` itself (symlinks not followed). */
export function writeXattr(path: Buffer, key: Uint8Array, val: Uint8Array): void {
  const a = native();
  try {
    if (a) return a.lsetxattr(path, Buffer.from(key), Buffer.from(val));
    lib().setAttributeSync(utf8(path, path.toString()), utf8(Buffer.from(key), "xattr name"), val);
  } catch (e) {
    if (e instanceof PfsError) throw e;
    throw PfsError.io(`setting xattr ${Buffer.from(key).toString()} on ${path.toString()}`, e);
  }
}

/**
 * Create a device node or fifo (`type` is S_IFCHR, S_IFBLK or S_IFIFO) named
 * `name` in the directory open as `dirfd` (AT_FDCWD when null: `name` is then
 * a path). Never follows an existing name: EEXIST.
 */
export function mknod(dirfd: number | null, name: Buffer, type: number, perm: number, major: number, minor: number): void {
  const a = native();
  try {
    if (a) return a.mknodat(dirfd ?? AT_FDCWD, name, type | perm, major, minor);
    if (dirfd !== null) throw new PfsError(ErrorCode.UNSUPPORTED, "mknod relative to a directory needs the native helper");
    const kind = ({ 0o020000: "c", 0o060000: "b", 0o010000: "p" } as Record<number, string>)[type & 0o170000];
    if (!kind) throw PfsError.usage(`mknod: file type 0o${type.toString(8)} is not a device or fifo`);
    const dev = kind === "p" ? [] : [String(major), String(minor)];
    execFileSync("mknod", ["-m", perm.toString(8), name.toString(), kind, ...dev], { stdio: "pipe" });
  } catch (e) {
    if (e instanceof PfsError) throw e;
    throw PfsError.io(`mknod ${name.toString()}`, e);
  }
}

/** FastCDC's inner loop in C (≈10× the JS one); null without the addon. */
export interface NativeCdcCut {
  (buf: Uint8Array, start: number, n: number, min: number, avg: number, max: number, maskS: number, maskL: number): [number, number, number];
}
let cdcReady = false;
export function nativeCdcCut(gear: Buffer): NativeCdcCut | null {
  const a = native();
  if (!a) return null;
  if (!cdcReady) {
    a.cdcInit(gear);
    cdcReady = true;
  }
  return a.cdcCut;
}

/**
 * One directory for the builder's walk (native/pfs_native.c js_scandir):
 * entries sorted by raw name bytes; per entry i, num[6i…6i+5] = mode, uid,
 * gid, size, major, minor (mode = -errno when its lstat failed), keys[i] =
 * "st_dev:st_ino", xattrs[i] = 0 none, 1 some, 2 listing them failed.
 */
export interface ScannedDir {
  names: Buffer[];
  keys: Array<string | undefined>;
  num: Float64Array;
  xattrs: Uint8Array;
}

/** The walk's directory scan in C; null without the addon. */
export function nativeScandir(): ((dir: Buffer) => ScannedDir) | null {
  return native()?.scandir ?? null;
}

/**
 * A whole small file into `dest` in one call (open O_NOFOLLOW|O_NONBLOCK,
 * fstat, read to EOF or until dest is full, close): the bytes read, or -1 if
 * it is not a regular file; errors carry syscall "open", "fstat" or "read".
 * Null without the addon.
 */
export function nativeReadfile(): ((path: Buffer, dest: Uint8Array) => number) | null {
  return native()?.readfile ?? null;
}

/** fs-verity digest in C with Node's OpenSSL (≈1.5× the JS one: one SHA256() per block, no Hash objects); null without the addon. */
export function nativeFsVerity(): ((data: Uint8Array) => Buffer) | null {
  return native()?.fsverity ?? null;
}

/** The zstd seekable encoder in C (see zstdArchive); null when unavailable. */
export function nativeSeekable(): ((data: Uint8Array) => Buffer) | null {
  return native()?.seekable ?? null;
}
