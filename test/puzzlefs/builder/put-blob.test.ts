import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { BlobStore } from "../../../src/oci/blobs.ts";
import { Compression, encodeBlob, putBlob } from "../../../src/puzzlefs/builder/put-blob.ts";
import { compressSeekable } from "../../../src/puzzlefs/compression/seekable-encode.ts";
import { FIXTURES, sha256hex } from "../../helpers/oci-fixtures.ts";
import { randomBytes, textBytes } from "../../helpers/torture-tree.ts";
import { removeTree, tempDir } from "../../helpers/tree.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeTree(d);
});
const scratch = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

/** fs-verity digest by fsverity-utils (the oracle), of bytes written to a temp file. */
function fsverity(bytes: Uint8Array): string {
  const f = join(scratch(), "f");
  writeFileSync(f, bytes);
  return execFileSync("fsverity", ["digest", "--hash-alg=sha256", "--block-size=4096", f], { encoding: "utf8" }).split(" ")[0]!.slice("sha256:".length);
}
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const JPG = readFileSync(join(FIXTURES, "SekienAkashita.jpg"));

describe("put_blob (spec §3.5)", () => {
  it("noop: stores the bytes as they are; `meshuggah rocks` is 3abd5ce0…; verity is fsverity's", () => {
    const store = new BlobStore(scratch());
    const data = new TextEncoder().encode("meshuggah rocks");
    const r = putBlob(store, data, Compression.NOOP);
    expect(r).toMatchObject({ hex: "3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d", size: 15, compressed: false, existed: false });
    expect(hex(r.verity)).toBe(fsverity(data));
    expect(readFileSync(store.path(r.hex)).toString()).toBe("meshuggah rocks");
  });

  it("zstd: compressible data is stored compressed (zstd -d restores it); the jpg gives d568d150…", () => {
    const store = new BlobStore(scratch());
    const text = textBytes(200_000, 3);
    const r = putBlob(store, text, Compression.ZSTD);
    expect(r.compressed).toBe(true);
    expect(r.size).toBeLessThan(text.length / 2);
    const stored = readFileSync(store.path(r.hex));
    expect(sha256hex(stored)).toBe(r.hex);
    expect(execFileSync("zstd", ["-dc"], { input: stored }).equals(text)).toBe(true);
    expect(hex(r.verity)).toBe(fsverity(stored));
    const jpg = putBlob(store, JPG, Compression.ZSTD);
    expect(jpg).toMatchObject({ hex: "d568d1505905ee36e66ef6f94f544a50f52c6a63574048da0cf351b8235ff42b", size: 104649, compressed: true });
  });

  it("zstd: incompressible data is stored raw, uncompressed flag, but its verity is of the compressed form (upstream, §8)", () => {
    const data = randomBytes(100_000, 4);
    const e = encodeBlob(data, Compression.ZSTD);
    expect(e.compressed).toBe(false);
    expect(Buffer.from(e.stored).equals(data)).toBe(true);
    expect(hex(e.verity)).not.toBe(fsverity(data));
    // it is the digest of the seekable stream (which zstd decodes back to the data), as fsverity computes it
    const z = compressSeekable(data);
    expect(z.length).toBeGreaterThanOrEqual(data.length);
    expect(execFileSync("zstd", ["-dc"], { input: z }).equals(data)).toBe(true);
    expect(hex(e.verity)).toBe(fsverity(z));
  });

  it("keeps an existing identical blob, and refuses one whose file has other bytes", () => {
    const store = new BlobStore(scratch());
    const data = textBytes(10_000, 5);
    const first = putBlob(store, data, Compression.NOOP);
    const again = putBlob(store, data, Compression.NOOP);
    expect([first.existed, again.existed]).toEqual([false, true]);
    writeFileSync(store.path(first.hex), "corrupt");
    let err: unknown = null;
    try {
      putBlob(store, data, Compression.NOOP);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PfsError);
    expect((err as PfsError).code).toBe(ErrorCode.EXISTS);
    expect((err as PfsError).message).toMatch(/already exists and it's not content addressable/);
  });
});
