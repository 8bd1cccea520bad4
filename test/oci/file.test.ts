import { afterEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { BlobStore } from "../../src/oci/blobs.ts";
import { readRegularFile } from "../../src/oci/file.ts";
import { OciLayout } from "../../src/oci/layout.ts";
import { blobPath, tmpDirs } from "../helpers/oci-fixtures.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

async function fails(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect([(e as PfsError).code, (e as PfsError).message]).toEqual([code, expect.stringMatching(re)]);
    return;
  }
  throw new Error("expected a rejection");
}

describe("oci/file readRegularFile", () => {
  it("reads a regular file whole, checking size and cap first", async () => {
    const p = join(tmp.make(), "f");
    writeFileSync(p, "0123456789");
    expect(Buffer.from(await readRegularFile(p, "f", { maxSize: 10 })).toString()).toBe("0123456789");
    await fails(readRegularFile(p, "f", { maxSize: 9 }), ErrorCode.LIMIT, /^f: exceeds limit \(10 bytes > 9\)$/);
    await fails(readRegularFile(p, "f", { maxSize: 99, expectedSize: 11 }), ErrorCode.FORMAT, /size differs from its descriptor: expected 11, got 10/);
    await fails(readRegularFile(`${p}.missing`, "g", { maxSize: 9, missingHint: "h" }), ErrorCode.NOT_FOUND, /^g: not found$/);
  });

  it("a FIFO or a directory where a blob or index.json belongs is refused instead of hanging", async () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
    const hex = "ab".repeat(32);
    execFileSync("mkfifo", [blobPath(dir, hex)]);
    await fails(new BlobStore(dir).get(hex), ErrorCode.FORMAT, /is not a regular file/);
    writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    execFileSync("mkfifo", [join(dir, "index.json")]);
    await fails((await OciLayout.open(dir)).tags(), ErrorCode.FORMAT, /index.json is not a regular file/);
    const d2 = tmp.make();
    mkdirSync(join(d2, "oci-layout"));
    await fails(OciLayout.open(d2), ErrorCode.FORMAT, /oci-layout is not a regular file/);
  });
});
