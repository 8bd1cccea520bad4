import { describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { openImage } from "../../../src/puzzlefs/reader/image.ts";
import { lookupPath } from "../../../src/puzzlefs/reader/path.ts";
import { MemoryTree } from "../../../src/puzzlefs/tree.ts";
import { fixtureDir } from "../../helpers/oci-fixtures.ts";

function fails(f: () => unknown, code: string, re: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect([(e as PfsError).code, (e as PfsError).message]).toEqual([code, expect.stringMatching(re)]);
    return;
  }
  throw new Error("expected an error");
}

describe("reader/path lookupPath (spec §2.4, §6 vectors)", () => {
  it("upstream's vectors on the jpg image: / → 1, /SekienAkashita.jpg → 2, /notexist → none, ./x and x → error", async () => {
    const t = (await openImage(fixtureDir("sekien-noop"), "test")).tree;
    expect(lookupPath(t, "/")).toBe(1);
    expect(lookupPath(t, "/SekienAkashita.jpg")).toBe(2);
    expect(lookupPath(t, "//SekienAkashita.jpg/")).toBe(2);
    fails(() => lookupPath(t, "/notexist"), ErrorCode.NOT_FOUND, /^path "\/notexist" in the image: not found$/);
    fails(() => lookupPath(t, "./x"), ErrorCode.USAGE, /must start with "\/"/);
    fails(() => lookupPath(t, "x"), ErrorCode.USAGE, /must start with "\/"/);
  });

  it("refuses . and .., and walking through a non-directory; takes raw bytes", () => {
    const t = new MemoryTree({
      1: { kind: "dir", entries: [{ name: "a", ino: 2 }, { name: Uint8Array.from([0xff]), ino: 3 }] },
      2: { kind: "file", data: "x" },
      3: { kind: "dir" },
    });
    fails(() => lookupPath(t, "/a/../a"), ErrorCode.USAGE, /"\." and "\.\." are not allowed/);
    fails(() => lookupPath(t, "/./a"), ErrorCode.USAGE, /not allowed/);
    fails(() => lookupPath(t, "/a/b"), ErrorCode.NOT_FOUND, /^path "\/a\/b": \/a is not a directory$/);
    expect(lookupPath(t, Uint8Array.from([0x2f, 0xff]))).toBe(3);
  });
});
