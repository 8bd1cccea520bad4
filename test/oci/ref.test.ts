import { describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { parseImageRef, parseImageRefOptionalTag } from "../../src/oci/ref.ts";

const usage = (f: () => unknown, re: RegExp) => {
  try {
    f();
    expect.unreachable();
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(ErrorCode.USAGE);
    expect((e as PfsError).message).toMatch(re);
  }
};

describe("oci/ref OCI_DIR:TAG (spec §1.5)", () => {
  it("splits into directory and tag", () => {
    expect(parseImageRef("/tmp/oci:test")).toEqual({ dir: "/tmp/oci", tag: "test" });
    expect(parseImageRef("./x:v1.0")).toEqual({ dir: "./x", tag: "v1.0" });
  });

  it("refuses upstream's error cases: a:b:c, dir, dir:", () => {
    for (const s of ["a:b:c", "dir", "dir:"]) usage(() => parseImageRef(s), /Expected oci_dir in the following format <oci_dir>:<tag>/);
  });

  it("refuses an empty directory or tag", () => {
    usage(() => parseImageRef(":tag"), /OCI directory is empty/);
    usage(() => parseImageRef("dir::"), /tag is empty/);
    usage(() => parseImageRef("dir:a\nb"), /invalid tag/);
  });

  it("tag optional form", () => {
    expect(parseImageRefOptionalTag("dir")).toEqual({ dir: "dir", tag: undefined });
    expect(parseImageRefOptionalTag("dir:")).toEqual({ dir: "dir", tag: undefined });
    expect(parseImageRefOptionalTag("dir:t")).toEqual({ dir: "dir", tag: "t" });
    usage(() => parseImageRefOptionalTag("a:b:c"), /Expected oci_dir/);
  });
});
