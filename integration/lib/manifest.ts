/**
 * The verifier: a manifest of a source tree taken on the host (sha256 of every
 * regular file, mode, uid, gid, nlink, device numbers, symlink targets,
 * hard-link groups), the same manifest parsed from what the guest printed
 * (guest/init.sh `report`), and a comparison that lists every difference.
 *
 * Paths are kept as their raw bytes, held in JS strings as latin1 code units
 * (one char per byte), so non-UTF-8 names compare exactly. Keys look like the
 * guest's `find .` output: "." for the root, "./a/b" below it.
 */
import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";

export interface Entry {
  path: string;
  /** Full st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Inode number in its own filesystem; only used to find hard-link groups. */
  ino: string;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  sha256?: string;
  /** Symlink target (latin1 of its bytes). */
  target?: string;
}

export type Manifest = Map<string, Entry>;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

const isType = (mode: number, t: number): boolean => (mode & S_IFMT) === t;

/** glibc's dev_t split (sys/sysmacros.h): 12-bit major, 20-bit minor in the low 32 bits. */
export function splitDev(dev: bigint): [number, number] {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return [major, minor];
}

function sha256File(path: Buffer): string {
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** Walk `root` (never following symlinks) and describe every object under it. */
export function buildManifest(root: string): Manifest {
  const out: Manifest = new Map();
  const rootBuf = Buffer.from(root);
  const walk = (rel: Buffer | null): void => {
    const abs = rel ? Buffer.concat([rootBuf, Buffer.from("/"), rel]) : rootBuf;
    const key = rel ? "./" + rel.toString("latin1") : ".";
    const st = lstatSync(abs, { bigint: true });
    const mode = Number(st.mode);
    const [rdevMajor, rdevMinor] = splitDev(st.rdev);
    const e: Entry = {
      path: key,
      mode,
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      ino: String(st.ino),
      size: Number(st.size),
      rdevMajor,
      rdevMinor,
    };
    if (isType(mode, S_IFREG)) e.sha256 = sha256File(abs);
    if (isType(mode, S_IFLNK)) e.target = readlinkSync(abs, { encoding: "buffer" }).toString("latin1");
    out.set(key, e);
    if (isType(mode, S_IFDIR)) {
      const names = readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare);
      for (const n of names) walk(rel ? Buffer.concat([rel, Buffer.from("/"), n]) : n);
    }
  };
  walk(null);
  return out;
}

/**
 * Parse the guest's report for device `dev` from its console lines:
 *   S <dev> <mode hex> <uid> <gid> <nlink> <major hex> <minor hex> <size> <ino> <path>
 *   H <dev> <sha256>  <path>
 *   L <dev> '<path>' -> '<target>'       (busybox stat %N; no escaping)
 */
export function parseGuestReport(lines: readonly string[], dev: number): Manifest {
  const out: Manifest = new Map();
  const s = `S ${dev} `;
  const h = `H ${dev} `;
  const l = `L ${dev} `;
  const links: string[] = [];
  for (const line of lines) {
    if (line.startsWith(s)) {
      const f = line.slice(s.length).split(" ");
      if (f.length < 9) continue;
      const path = f.slice(8).join(" ");
      out.set(path, {
        path,
        mode: parseInt(f[0]!, 16),
        uid: Number(f[1]),
        gid: Number(f[2]),
        nlink: Number(f[3]),
        rdevMajor: parseInt(f[4]!, 16),
        rdevMinor: parseInt(f[5]!, 16),
        size: Number(f[6]),
        ino: f[7]!,
      });
    } else if (line.startsWith(h)) {
      const m = /^([0-9a-f]{64}) {2}(.*)$/s.exec(line.slice(h.length));
      const e = m && out.get(m[2]!);
      if (e) e.sha256 = m[1]!;
    } else if (line.startsWith(l)) {
      links.push(line.slice(l.length));
    }
  }
  // "'<path>' -> '<target>'": split where the left side is a known symlink.
  for (const text of links) {
    for (let i = text.indexOf("' -> '"); i >= 0; i = text.indexOf("' -> '", i + 1)) {
      const e = out.get(text.slice(1, i));
      if (e && isType(e.mode, S_IFLNK) && text.endsWith("'")) {
        e.target = text.slice(i + 6, -1);
        break;
      }
    }
  }
  return out;
}

/** Make a latin1-held path printable: non-ASCII and control bytes as \xNN. */
export function showPath(p: string): string {
  return p.replace(/[^\x20-\x7e]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
}

function linkGroups(m: Manifest): Map<string, string> {
  // path -> sorted list of the paths sharing its inode (non-directories with nlink > 1)
  const byIno = new Map<string, string[]>();
  for (const e of m.values()) {
    if (isType(e.mode, S_IFDIR) || e.nlink < 2) continue;
    const g = byIno.get(e.ino) ?? [];
    g.push(e.path);
    byIno.set(e.ino, g);
  }
  const out = new Map<string, string>();
  for (const g of byIno.values()) {
    const key = g.sort().join("\n");
    for (const p of g) out.set(p, key);
  }
  return out;
}

export interface CompareOptions {
  /** Paths the mounted filesystem may add (default: ./lost+found and below, when the source lacks it). */
  allowExtra?: (path: string) => boolean;
}

/**
 * Every difference between the expected (host) and actual (guest) manifests,
 * one human-readable line each; empty when they agree. Directory nlink and
 * size are not compared (they depend on the filesystem, not the tree).
 */
export function compareManifests(expected: Manifest, actual: Manifest, opts: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  const allowExtra =
    opts.allowExtra ?? ((p: string) => !expected.has("./lost+found") && /^\.\/lost\+found(\/|$)/.test(p));
  for (const [p, x] of expected) {
    const a = actual.get(p);
    const name = showPath(p);
    if (!a) {
      diffs.push(`missing: ${name}`);
      continue;
    }
    const d = (what: string, want: unknown, got: unknown): void => {
      if (want !== got) diffs.push(`${name}: ${what}: expected ${String(want)}, got ${String(got)}`);
    };
    d("mode", x.mode.toString(8), a.mode.toString(8));
    d("uid", x.uid, a.uid);
    d("gid", x.gid, a.gid);
    if (!isType(x.mode, S_IFDIR)) d("nlink", x.nlink, a.nlink);
    if (isType(x.mode, S_IFCHR) || isType(x.mode, S_IFBLK)) {
      d("rdev", `${x.rdevMajor}:${x.rdevMinor}`, `${a.rdevMajor}:${a.rdevMinor}`);
    }
    if (isType(x.mode, S_IFREG)) {
      d("size", x.size, a.size);
      d("sha256", x.sha256, a.sha256);
    }
    if (isType(x.mode, S_IFLNK)) d("target", x.target && showPath(x.target), a.target && showPath(a.target));
  }
  for (const p of actual.keys()) if (!expected.has(p) && !allowExtra(p)) diffs.push(`unexpected: ${showPath(p)}`);
  const gx = linkGroups(expected);
  const ga = linkGroups(actual);
  for (const [p, g] of gx) {
    if (actual.has(p) && ga.get(p) !== g) {
      diffs.push(`${showPath(p)}: hard-link group: expected [${showPath(g)}], got [${showPath(ga.get(p) ?? p)}]`);
    }
  }
  return diffs;
}

/** Serialize for handing a manifest from global setup to the test files. */
export function manifestToJson(m: Manifest): string {
  return JSON.stringify([...m.values()]);
}

export function manifestFromJson(text: string): Manifest {
  const entries = JSON.parse(text) as Entry[];
  return new Map(entries.map((e) => [e.path, e]));
}
