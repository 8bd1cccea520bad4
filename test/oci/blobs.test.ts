import { afterEach, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { BlobStore } from "../../src/oci/blobs.ts";
import { blobPath, flipByte, sha256hex, tmpDirs } from "../helpers/oci-fixtures.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

async function code(p: Promise<unknown>): Promise<PfsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    return e as PfsError;
  }
  throw new Error("expected a rejection");
}

const JPG_HEX = "d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed";

describe("oci/blobs BlobStore", () => {
  it("put writes blobs/sha256/<sha256> (spec §6 'meshuggah rocks' vector), reads back verified", async () => {
    const dir = tmp.make();
    const store = new BlobStore(dir);
    const data = new TextEncoder().encode("meshuggah rocks");
    const r = await store.put(data);
    expect(r).toEqual({ hex: "3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d", size: 15, existed: false });
    expect(readFileSync(blobPath(dir, r.hex), "utf8")).toBe("meshuggah rocks");
    expect(Buffer.from(await store.get(r.hex))).toEqual(Buffer.from(data));
    // No temp files left behind.
    expect(readdirSync(join(dir, "blobs/sha256"))).toEqual([r.hex]);
    // Idempotent: same bytes again is fine and does not rewrite.
    expect((await store.put(data)).existed).toBe(true);
    expect(store.stats.writes).toBe(1);
  });

  it("refuses to overwrite a digest whose file holds other bytes (EXISTS)", async () => {
    const dir = tmp.make();
    const store = new BlobStore(dir);
    const data = new TextEncoder().encode("meshuggah rocks");
    const { hex } = await store.put(data);
    writeFileSync(blobPath(dir, hex), "something else");
    const e = await code(store.put(data));
    expect(e.code).toBe(ErrorCode.EXISTS);
    expect(e.message).toMatch(/already exists and it's not content addressable/);
    expect(readFileSync(blobPath(dir, hex), "utf8")).toBe("something else");
  });

  it("get checks sha256 on every read: a flipped byte is a DIGEST error naming the blob", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const store = new BlobStore(dir);
    expect(sha256hex(await store.get(JPG_HEX))).toBe(JPG_HEX);
    flipByte(blobPath(dir, JPG_HEX), 5000);
    const e = await code(store.get(JPG_HEX));
    expect(e.code).toBe(ErrorCode.DIGEST);
    expect(e.message).toBe(`blob sha256:${JPG_HEX}: sha256 mismatch: expected ${JPG_HEX}, got ${sha256hex(readFileSync(blobPath(dir, JPG_HEX)))}`);
  });

  it("missing blob is NOT_FOUND; size differing from the descriptor and size over the cap are refused before hashing", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const store = new BlobStore(dir);
    const missing = "0".repeat(64);
    const e = await code(store.get(missing, { what: "chunk blob sha256:000…" }));
    expect(e.code).toBe(ErrorCode.NOT_FOUND);
    expect(e.message).toBe("chunk blob sha256:000…: not found");
    expect(await store.size(missing)).toBeNull();
    const e2 = await code(store.get(JPG_HEX, { expectedSize: 100 }));
    expect(e2.code).toBe(ErrorCode.FORMAT);
    expect(e2.message).toMatch(/size differs from its descriptor: expected 100, got 109466/);
    const e3 = await code(store.get(JPG_HEX, { maxSize: 1000 }));
    expect(e3.code).toBe(ErrorCode.LIMIT);
  });

  it("open() verifies once and serves ranges; out-of-range reads are FORMAT errors", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const store = new BlobStore(dir);
    const opened: string[] = [];
    store.onOpen = (h) => opened.push(h);
    const b = await store.open(JPG_HEX);
    const whole = readFileSync(blobPath(dir, JPG_HEX));
    expect(Buffer.from(b.read(100, 50))).toEqual(whole.subarray(100, 150));
    expect(Buffer.from(b.read(109466 - 3, 3))).toEqual(whole.subarray(109463));
    expect(() => b.read(109466 - 3, 4)).toThrow(/outside the blob/);
    expect(opened).toEqual([JPG_HEX]);
    expect(store.stats.opens).toBe(1);
  });

  it("follows a symlinked blobs/sha256 for reads and writes", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    const shared = join(tmp.make(), "shared-sha256");
    renameSync(join(dir, "blobs/sha256"), shared);
    symlinkSync(shared, join(dir, "blobs/sha256"));
    const store = new BlobStore(dir);
    expect(sha256hex(await store.get(JPG_HEX))).toBe(JPG_HEX);
    const { hex } = await store.put(new TextEncoder().encode("via symlink"));
    expect(existsSync(join(shared, hex))).toBe(true);
  });

  it("follows a symlinked individual blob", async () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    const real = join(tmp.make(), "blob");
    writeFileSync(real, "meshuggah rocks");
    const hex = "3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d";
    symlinkSync(real, blobPath(dir, hex));
    expect(new TextDecoder().decode(await new BlobStore(dir).get(hex))).toBe("meshuggah rocks");
  });

  it("rejects non-hex digests before touching the file system", () => {
    expect(() => new BlobStore("/x").path("../../etc/passwd")).toThrow(/not a sha256 hex digest/);
  });
});

describe("oci/blobs BlobStore.putSync (the builder's blocking put)", () => {
  it("follows put's rules: writes sha256-named blobs (creating blobs/sha256), keeps identical ones, refuses other bytes", () => {
    const dir = tmp.make();
    const store = new BlobStore(dir);
    const data = new TextEncoder().encode("meshuggah rocks");
    expect(store.putSync(data)).toEqual({ hex: "3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d", size: 15, existed: false });
    expect(store.putSync(data).existed).toBe(true);
    expect(readdirSync(join(dir, "blobs/sha256"))).toEqual(["3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d"]);
    writeFileSync(blobPath(dir, "3abd5ce0f91f640d88dca1f26b37037b02415927cacec9626d87668a715ec12d"), "other");
    expect(() => store.putSync(data)).toThrow(/already exists and it's not content addressable/);
    try {
      store.putSync(data);
    } catch (e) {
      expect((e as PfsError).code).toBe(ErrorCode.EXISTS);
    }
  });

  it("an OS error is IO naming the blob (ENOSPC and temp-file clean-up: test/puzzlefs/builder/build.test.ts)", () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    const store = new BlobStore(dir);
    // A directory where the blob's file belongs.
    const hex = sha256hex(new TextEncoder().encode("x"));
    mkdirSync(blobPath(dir, hex));
    writeFileSync(join(blobPath(dir, hex), "inside"), "");
    let err: unknown;
    try {
      store.putSync(new TextEncoder().encode("x"));
    } catch (e) {
      err = e;
    }
    expect((err as PfsError).code).toBe(ErrorCode.IO);
    expect((err as PfsError).message).toMatch(new RegExp(`blob sha256:${hex}: EISDIR`));
    expect(readdirSync(join(dir, "blobs/sha256"))).toEqual([hex]);
  });
});
