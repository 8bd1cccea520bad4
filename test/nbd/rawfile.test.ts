import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlockDevice } from "../../src/common/blockdev.ts";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { RawFileDevice } from "../../src/nbd/rawfile.ts";
import { pattern } from "./helpers/memdev.ts";

let dir: string;
const bytes = pattern(3 * 4096 + 100, 11);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pfs-rawfile-"));
  await writeFile(join(dir, "img"), bytes);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("RawFileDevice", () => {
  it("reports the file size and reads any range byte for byte", async () => {
    const dev = await RawFileDevice.open(join(dir, "img"));
    try {
      expect(dev.size).toBe(bytes.length);
      expect(dev.blockSize).toBe(4096);
      expect((dev as BlockDevice).allocation).toBeUndefined();
      for (const [o, n] of [[0, 1], [4095, 2], [0, bytes.length], [bytes.length - 1, 1], [5000, 7000]] as const) {
        expect(Buffer.from(await dev.read(o, n)).equals(bytes.subarray(o, o + n)), `${o}+${n}`).toBe(true);
      }
    } finally {
      await dev.close();
    }
  });

  it("readInto fills caller buffers the same way on the synchronous and the thread-pool path", async () => {
    for (const syncReadMax of [0, 4096, 1 << 30]) {
      const dev = await RawFileDevice.open(join(dir, "img"), { syncReadMax });
      try {
        for (const [o, n] of [[0, 4096], [100, 8000], [0, bytes.length]] as const) {
          const dest = new Uint8Array(new ArrayBuffer(n + 16), 16, n); // not a Buffer, not at offset 0
          await dev.readInto(o, dest);
          expect(Buffer.from(dest).equals(bytes.subarray(o, o + n)), `sync≤${syncReadMax} ${o}+${n}`).toBe(true);
        }
      } finally {
        await dev.close();
      }
    }
  });

  it("fails with IO and the offset of the first missing byte when the file shrank", async () => {
    const p = join(dir, "shrinks");
    await writeFile(p, bytes);
    const dev = await RawFileDevice.open(p);
    try {
      await truncate(p, 5000);
      const err = await dev.read(4096, 4096).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PfsError);
      expect((err as PfsError).code).toBe(ErrorCode.IO);
      expect((err as PfsError).data.offset).toBe(5000);
      const big = await RawFileDevice.open(p, { syncReadMax: 0 });
      const err2 = await big.readInto(4096, new Uint8Array(4096)).catch((e: unknown) => e);
      await big.close();
      expect((err2 as PfsError).data.offset).toBe(5000);
    } finally {
      await dev.close();
    }
  });

  it("refuses missing files and directories with a message naming the path", async () => {
    await expect(RawFileDevice.open(join(dir, "missing"))).rejects.toMatchObject({ code: ErrorCode.IO, message: expect.stringContaining("ENOENT") });
    await expect(RawFileDevice.open(dir)).rejects.toMatchObject({ code: ErrorCode.USAGE, message: expect.stringContaining(dir) });
  });

  it("fails reads after close", async () => {
    const dev = await RawFileDevice.open(join(dir, "img"));
    await dev.close();
    await expect(dev.read(0, 1)).rejects.toMatchObject({ code: ErrorCode.IO });
  });
});
