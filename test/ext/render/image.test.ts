import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { ErrorCode, PfsError, isPfsError } from "../../../src/common/errors.ts";
import { MemoryTree, type Tree } from "../../../src/puzzlefs/tree.ts";
import { ExtImage, planExtImage } from "../../../src/ext/index.ts";
import { RK } from "../../../src/ext/layout/regions.ts";
import { prng, sha256, tortureTree } from "../helpers.ts";

/** A tree whose file `bad` fails verification (like a corrupt chunk), optionally saying at which file byte. */
function failingTree(inner: MemoryTree, bad: number, fileOffset?: number): Tree & { prefetched: Array<[number, number, number]> } {
  const prefetched: Array<[number, number, number]> = [];
  return {
    rootIno: inner.rootIno,
    nodeCount: inner.nodeCount,
    node: (ino) => inner.node(ino),
    readFile: async (ino, off, len) => {
      if (ino === bad) throw new PfsError(ErrorCode.DIGEST, "chunk sha256:abc: sha256 mismatch", { data: fileOffset === undefined ? {} : { fileOffset } });
      return inner.readFile(ino, off, len);
    },
    prefetchFile: async (ino, off, len) => void prefetched.push([ino, off, len]),
    prefetched,
  };
}

const small = (): MemoryTree =>
  new MemoryTree({
    1: { kind: "dir", entries: [{ name: "good", ino: 2 }, { name: "bad", ino: 3 }] },
    2: { kind: "file", data: prng(1, 50_000) },
    3: { kind: "file", data: prng(2, 50_000) },
  });

/** Device byte range of tree inode `treeIno`'s data (single region). */
function fileRange(dev: ExtImage, treeIno: number): [number, number] {
  const rt = dev.plan.regions;
  for (let i = 0; i < rt.count; i++) {
    if (rt.kind[i] === RK.FILE && dev.plan.inodes.treeIno[rt.arg[i]!] === treeIno) return [rt.start[i]! * 4096, rt.len[i]! * 4096];
  }
  throw new Error("no region");
}

describe("ExtImage.readAt", () => {
  it("turns a failing file read into an error for that read only, with the device offset", async () => {
    const dev = new ExtImage(planExtImage(failingTree(small(), 3), { mtime: 0 }));
    const [start] = fileRange(dev, 3);
    const err = await dev.readAt(start - 4096, 3 * 4096).catch((e: unknown) => e);
    expect(isPfsError(err, ErrorCode.DIGEST)).toBe(true);
    expect((err as PfsError).data.offset).toBe(start);
    expect((err as PfsError).message).toMatch(new RegExp(`@0x${start.toString(16)}`));
    const [gs, gl] = fileRange(dev, 2);
    expect(sha256((await dev.readAt(gs, gl)).subarray(0, 50_000))).toBe(sha256(prng(1, 50_000)));
    expect((await dev.readAt(0, 8192)).length).toBe(8192); // metadata still reads
    const mid = await dev.readAt(start + 8192, 100).catch((e: unknown) => e);
    expect((mid as PfsError).data.offset).toBe(start + 8192);
  });

  it("reports the exact failing byte when the tree names the file offset", async () => {
    const dev = new ExtImage(planExtImage(failingTree(small(), 3, 20_000), { mtime: 0 }));
    const [start] = fileRange(dev, 3);
    const err = (await dev.readAt(start, 40_000).catch((e: unknown) => e)) as PfsError;
    expect(err.data.offset).toBe(start + 20_000);
  });

  it("zero-fills the tail of a file's last block and rejects reads outside the device", async () => {
    const dev = new ExtImage(planExtImage(small(), { mtime: 0 }));
    const [start, len] = fileRange(dev, 2);
    const b = await dev.readAt(start, len);
    expect(len).toBe(53_248);
    expect(b.subarray(50_000).every((x) => x === 0)).toBe(true);
    await expect(dev.readAt(dev.size - 10, 11)).rejects.toMatchObject({ code: ErrorCode.USAGE });
    await expect(dev.readAt(-1, 1)).rejects.toMatchObject({ code: ErrorCode.USAGE });
    expect((await dev.read(dev.size - 10, 10)).length).toBe(10);
    expect((await dev.readAt(dev.size, 0)).length).toBe(0);
  });

  it("readInto writes every byte of a reused buffer: zero regions and file tails too", async () => {
    const tree = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "a", ino: 2 }, { name: "b", ino: 3 }] },
      2: { kind: "file", data: { size: 200 << 20, read: (o, l) => new Uint8Array(l).fill(o % 7) } }, // two groups: an unused inode table
      3: { kind: "file", data: prng(3, 5000) },
    });
    const dev = new ExtImage(planExtImage(tree, { mtime: 0 }));
    expect(dev.allocation(0, dev.size).some((e) => e.zero)).toBe(true);
    const zero = dev.allocation(0, dev.size).find((e) => e.zero)!;
    const [fs, fl] = fileRange(dev, 3);
    const ranges: Array<[number, number]> = [[0, 65536], [zero.offset - 100, zero.length + 200], [fs, fl], [fs + 4000, 4096], [dev.size - 8192, 8192]];
    for (let i = 0; i < 40; i++) ranges.push([(i * 7_654_321) % (dev.size - 70_000), 1 + ((i * 4099) % 69_000)]);
    for (const [off, len] of ranges) {
      const buf = new Uint8Array(len).fill(0xaa);
      await dev.readInto(off, buf);
      expect(Buffer.from(buf).equals(Buffer.from(await dev.readAt(off, len))), `${off}+${len}`).toBe(true);
    }
    await expect(dev.readInto(dev.size, new Uint8Array(1))).rejects.toMatchObject({ code: ErrorCode.USAGE });
  });

  it("prefetch warms only file regions, at file offsets", async () => {
    const t = failingTree(small(), 99);
    const dev = new ExtImage(planExtImage(t, { mtime: 0 }));
    const [start] = fileRange(dev, 3);
    await dev.prefetch(0, start + 4096 * 2 + 7);
    expect(t.prefetched).toContainEqual([3, 0, 4096 * 2 + 7]);
    expect(t.prefetched.map((p) => p[0]).sort()).toEqual([2, 3]);
  });
});

describe("second opinion: libext2fs (WASM, npm ext2fs) reading through readAt in-process", () => {
  it("sees the torture tree's names, types, sizes, links, inode numbers and contents", async () => {
    const require = createRequire(import.meta.url);
    const ext2fs = require("ext2fs");
    const { Disk } = require("file-disk");
    class ImageDisk extends Disk {
      constructor(readonly dev: ExtImage) {
        super(true, false, false, true);
      }
      async _getCapacity(): Promise<number> {
        return this.dev.size;
      }
      async _read(buf: Buffer, bo: number, len: number, off: number): Promise<{ bytesRead: number; buffer: Buffer }> {
        buf.set(await this.dev.readAt(off, len), bo);
        return { bytesRead: len, buffer: buf };
      }
      async _write(): Promise<never> {
        throw new Error("read-only");
      }
      async _flush(): Promise<void> {}
    }
    const tree = tortureTree({ bigDir: 800 });
    const dev = new ExtImage(planExtImage(tree, { mtime: 1_700_000_000 }));
    const problems: string[] = [];
    await ext2fs.withMountedDisk(new ImageDisk(dev), 0, async ({ promises: fs }: { promises: Record<string, (...a: unknown[]) => Promise<never>> }) => {
      const walk = async (ino: number, path: string): Promise<void> => {
        const n = tree.node(ino);
        const st = (await fs.lstat!(path || "/")) as unknown as { mode: number; size: number; uid: number; ino: number; nlink: number; mtime: Date };
        if ((st.mode & 0o7777) !== n.permissions) problems.push(`${path}: mode ${st.mode.toString(8)}`);
        if (st.uid !== (n.uid & 0xffff)) problems.push(`${path}: uid ${st.uid}`); // ext2fs reports the low 16 bits only
        if (st.mtime.getTime() !== 1_700_000_000_000) problems.push(`${path}: mtime ${st.mtime.toISOString()}`);
        if (n.kind === "file") {
          if (st.size !== n.size) problems.push(`${path}: size ${st.size}`);
          const fh = (await fs.open!(path, "r")) as unknown as { read(b: Buffer, o: number, l: number, p: number): Promise<{ bytesRead: number }>; close(): Promise<void> };
          const b = Buffer.alloc(n.size);
          if (n.size) await fh.read(b, 0, n.size, 0);
          await fh.close();
          if (sha256(b) !== sha256(await tree.readFile(ino, 0, n.size))) problems.push(`${path}: content`);
        }
        if (n.kind === "lnk") {
          const target = (await fs.readlink!(path)) as unknown as string;
          if (target !== Buffer.from(n.symlinkTarget!).toString()) problems.push(`${path}: link`);
        }
        if (n.kind === "dir") {
          const names = ((await fs.readdir!(path || "/")) as unknown as string[]).sort();
          const want = (n.entries ?? []).map((e) => Buffer.from(e.name).toString()).concat(ino === tree.rootIno ? ["lost+found"] : []);
          if (JSON.stringify(names) !== JSON.stringify(want.sort())) problems.push(`${path}: entries`);
          for (const e of n.entries ?? []) {
            const name = Buffer.from(e.name);
            if (name.toString() !== name.toString("latin1")) continue; // the WASM binding takes JS strings: UTF-8 names only
            await walk(e.ino, `${path}/${name.toString()}`);
          }
        }
      };
      await walk(tree.rootIno, "");
      const a = (await fs.lstat!("/hardlinked")) as unknown as { ino: number; nlink: number };
      const b = (await fs.lstat!("/tmp/hardlink-2")) as unknown as { ino: number };
      expect(a.ino).toBe(b.ino);
      expect(a.nlink).toBe(3);
    });
    expect(problems).toEqual([]);
  });
});
