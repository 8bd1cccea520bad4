/**
 * A writer for the cpio "newc" format, the only format the kernel's initramfs
 * unpacker reads (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Written here rather than with cpio(1) so the archive is deterministic
 * (mtime 0, uid 0) and device nodes need no mknod on the host.
 *
 * Each member: a 110-byte ASCII header, the NUL-terminated name padded to a
 * multiple of 4, the data padded to a multiple of 4. The archive ends with a
 * member named "TRAILER!!!".
 *
 *   c_magic "070701" | c_ino | c_mode | c_uid | c_gid | c_nlink | c_mtime |
 *   c_filesize | c_devmajor | c_devminor | c_rdevmajor | c_rdevminor |
 *   c_namesize | c_check      (every field 8 hex digits)
 */

export type CpioEntry =
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "file"; path: string; data: Uint8Array; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chr"; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function member(ino: number, mode: number, name: string, data: Uint8Array, rdev: [number, number] = [0, 0]): Buffer {
  const nameBytes = Buffer.from(name + "\0", "utf8");
  const header =
    "070701" +
    [ino, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0]
      .map(hex8)
      .join("");
  return Buffer.concat([
    Buffer.from(header, "ascii"),
    nameBytes,
    Buffer.alloc(pad4(110 + nameBytes.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ]);
}

/**
 * Serialize entries to a newc archive. Parent directories that are not listed
 * are added; directories come before their contents (the kernel does not
 * create missing parents).
 */
export function writeNewc(entries: readonly CpioEntry[]): Buffer {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, "");
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!byPath.has(dir)) byPath.set(dir, { kind: "dir", path: dir });
    }
    byPath.set(path, { ...e, path });
  }
  // Sorting by path puts every directory before its members.
  const sorted = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of sorted) {
    switch (e.kind) {
      case "dir":
        parts.push(member(ino++, S_IFDIR | (e.mode ?? 0o755), e.path, new Uint8Array(0)));
        break;
      case "file":
        parts.push(member(ino++, S_IFREG | (e.mode ?? 0o644), e.path, e.data));
        break;
      case "symlink":
        parts.push(member(ino++, S_IFLNK | 0o777, e.path, Buffer.from(e.target, "utf8")));
        break;
      case "chr":
        parts.push(member(ino++, S_IFCHR | (e.mode ?? 0o600), e.path, new Uint8Array(0), [e.major, e.minor]));
        break;
    }
  }
  parts.push(member(0, 0, "TRAILER!!!", new Uint8Array(0)));
  return Buffer.concat(parts);
}
