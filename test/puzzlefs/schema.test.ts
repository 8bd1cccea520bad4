import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The generated Cap'n Proto code is committed; regenerating it must give the
// same bytes, or someone edited schemas/ (or the generator) without `npm run gen`.
describe("schemas/metadata.capnp codegen", () => {
  const out = mkdtempSync(join(tmpdir(), "pfs-gen-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("committed src/puzzlefs/format/schema/metadata.ts is what `npm run gen` produces", () => {
    execFileSync("node", ["scripts/gen-capnp.mjs", out]);
    const fresh = readFileSync(join(out, "metadata.ts"), "utf8");
    const committed = readFileSync("src/puzzlefs/format/schema/metadata.ts", "utf8");
    expect(committed).toBe(fresh);
  });

  it("keeps upstream's file ID and struct IDs (capnp compile)", () => {
    const text = execFileSync("capnp", ["compile", "-ocapnp", "schemas/metadata.capnp"], { encoding: "utf8" });
    const ids = Object.fromEntries([...text.matchAll(/^struct (\w+) @(0x[0-9a-f]+)/gm)].map((m) => [m[1], m[2]]));
    expect(text).toMatch(/^@0x84ae5e6e88b7cbb7;$/m);
    expect(ids).toEqual({
      Chr: "0xa2fee4ceccb35a70",
      DirEntry: "0x99e3afb0455dece5",
      Dir: "0xa33ac5f983279604",
      Blk: "0xf2d11b2b81958969",
      FileChunk: "0x8ced9cffe6d215d2",
      BlobRef: "0xafde2ba061264046",
      Xattr: "0xd92b4bc2079fcd40",
      InodeAdditional: "0x99afa62a567d90d3",
      Inode: "0xb975cead028072a1",
      InodeVector: "0xa263e33af03b1423",
      VerityData: "0xe740f5fba5768dd0",
      Rootfs: "0xbb2389201cfec7c5",
    });
  });
});
