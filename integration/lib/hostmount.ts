/**
 * Host-side mount of an NBD export without the nbd module (recipe §B):
 * `nbdfuse` exposes the export as a file, the kernel loop-mounts that file
 * read-only with its ext4 driver. Plus the comparisons of scenario 3, each
 * judged by a standard tool: `diff -r`, GNU `stat`, `getfattr`.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { exited, run, startChild, stopChild, waitFor } from "./proc.ts";

export interface HostMount {
  /** The export as a file (inside the FUSE mount). */
  image: string;
  /** Where the filesystem is mounted. */
  mountpoint: string;
  unmount(): Promise<void>;
}

export async function mountExport(uri: string, work: string, fsType = "ext4"): Promise<HostMount> {
  const fuseDir = join(work, "fuse");
  const mnt = join(work, "mnt");
  mkdirSync(fuseDir, { recursive: true });
  mkdirSync(mnt, { recursive: true });
  const pidfile = join(work, "nbdfuse.pid");
  const image = join(fuseDir, "disk.img");
  // nbdfuse stays in the foreground; it writes the pidfile once the file is ready.
  const child: ChildProcess = startChild("nbdfuse", ["-r", "-P", pidfile, image, uri]);
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  try {
    await waitFor("nbdfuse to be ready", () => {
      if (child.exitCode !== null) throw new Error(`nbdfuse exited ${child.exitCode}: ${stderr}`);
      return existsSync(pidfile);
    });
    await run("mount", ["-t", fsType, "-o", "loop,ro", image, mnt]);
  } catch (e) {
    await run("fusermount3", ["-u", fuseDir], { check: false });
    await stopChild(child);
    throw e;
  }
  return {
    image,
    mountpoint: mnt,
    unmount: async () => {
      await run("umount", [mnt], { check: false });
      await run("fusermount3", ["-u", fuseDir], { check: false });
      await Promise.race([exited(child), new Promise((r) => setTimeout(r, 5000))]);
      await stopChild(child);
    },
  };
}

/**
 * `diff -r --no-dereference SRC MNT`, minus what diff says about any two
 * special files of the same type ("File a is a fifo while file b is a fifo")
 * and the lost+found the filesystem adds. Returns the remaining lines.
 */
export async function diffTrees(src: string, mnt: string): Promise<string[]> {
  const r = await run("diff", ["-r", "--no-dereference", src, mnt], { check: false, timeoutMs: 600_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`diff failed (${r.code}): ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .filter((l) => !/^File .* is a (.+) while file .* is a \1$/.test(l))
    .filter((l) => l !== `Only in ${mnt}: lost+found`);
}

/**
 * One line per object from GNU stat: name, type+mode, owner, group, link
 * count, device numbers, size, and for symlinks the target (%N). Directory
 * link counts and sizes are filesystem-specific, so they are blanked.
 */
export async function statLines(root: string): Promise<string[]> {
  const fmt = "%n\\0%f\\0%u\\0%g\\0%h\\0%t\\0%T\\0%s\\0%N\\0";
  const r = await run("sh", ["-c", `cd "$1" && find . -exec stat --printf '${fmt}' {} +`, "sh", root], {
    timeoutMs: 600_000,
    encoding: "latin1",
  });
  const f = r.stdout.split("\0");
  const out: string[] = [];
  for (let i = 0; i + 9 <= f.length; i += 9) {
    const [name, mode, uid, gid, nlink, maj, min, size, quoted] = f.slice(i, i + 9);
    if (/^\.\/lost\+found(\/|$)/.test(name!)) continue;
    const isDir = (parseInt(mode!, 16) & 0o170000) === 0o040000;
    out.push([name, mode, uid, gid, isDir ? "-" : nlink, maj, min, isDir ? "-" : size, quoted].join(" "));
  }
  return out.sort();
}

/** getfattr -R -P -h -d -m - -e hex, as a sorted list of "path: name=value". */
export async function xattrLines(root: string): Promise<string[]> {
  const r = await run("getfattr", ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."], {
    cwd: root,
    check: false,
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`getfattr failed (${r.code}): ${r.stderr}`);
  const out: string[] = [];
  let file = "";
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("# file: ")) file = line.slice(8);
    else if (line !== "") out.push(`${file}: ${line}`);
  }
  return out.sort();
}
