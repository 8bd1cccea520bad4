/**
 * A reference ext4 image made by e2fsprogs itself (mke2fs -d, then
 * e2fsck -fyD to index the big directory), with our format's features:
 * no journal, no 64bit (32-byte descriptors), metadata_csum seeded from the
 * UUID. Tests check our checksums, hashes and field tables against it, an
 * oracle we did not write.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { TempDir, debugfs } from "./helpers.ts";

export interface RefImage {
  dir: TempDir;
  img: string;
  /** Read `len` bytes at `off`. */
  read(off: number, len: number): Uint8Array;
  block(n: number): Uint8Array;
  /** Inode number of a path (debugfs). */
  ino(path: string): number;
  /** Physical blocks of a path's data (debugfs "blocks"). */
  blocks(path: string): number[];
  dumpe2fs(): string;
}

export function makeRefImage(): RefImage {
  const dir = new TempDir();
  const src = dir.file("src");
  mkdirSync(join(src, "big"), { recursive: true });
  for (let i = 0; i < 2000; i++) writeFileSync(join(src, "big", `reference-entry-with-a-long-name-${i}`), "");
  writeFileSync(join(src, "small"), "small");
  execFileSync("setfattr", ["-n", "user.a", "-v", "1", join(src, "small")]);
  writeFileSync(join(src, "bigxattr"), "b");
  execFileSync("setfattr", ["-n", "user.big", "-v", "v".repeat(500), join(src, "bigxattr")]);
  execFileSync("setfattr", ["-n", "trusted.t", "-v", "trusted", join(src, "bigxattr")]);
  // 12 data islands separated by holes: 12 extents, more than the inode holds → an extent tree block.
  const sparse = openSync(join(src, "sparse"), "w");
  for (let i = 0; i < 12; i++) writeSync(sparse, Buffer.alloc(4096, i + 1), 0, 4096, i * 65536);
  closeSync(sparse);
  symlinkSync("small", join(src, "lnk"));
  const img = dir.file("ref.img");
  execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^has_journal,^64bit,^metadata_csum_seed,^orphan_file", "-b", "4096", "-I", "256", "-d", src, img, "300M"]);
  const fsck = spawnSync("e2fsck", ["-fyD", img]);
  if (fsck.status !== 0 && fsck.status !== 1) throw new Error(`e2fsck -fyD failed: ${fsck.stdout}${fsck.stderr}`);
  const read = (off: number, len: number): Uint8Array => {
    const f = openSync(img, "r");
    try {
      const b = Buffer.alloc(len);
      readSync(f, b, 0, len, off);
      return new Uint8Array(b);
    } finally {
      closeSync(f);
    }
  };
  return {
    dir,
    img,
    read,
    block: (n) => read(n * 4096, 4096),
    ino: (p) => Number(/Inode: (\d+)/.exec(debugfs(img, `stat ${p}`))![1]),
    blocks: (p) => debugfs(img, `blocks ${p}`).trim().split(/\s+/).filter(Boolean).map(Number),
    dumpe2fs: () => execFileSync("dumpe2fs", [img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
  };
}
