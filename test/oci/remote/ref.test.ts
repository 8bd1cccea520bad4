import { describe, expect, it } from "vitest";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { formatRemoteRef, isLoopback, isRemoteRef, parseRemoteRef } from "../../../src/oci/remote/ref.ts";

const D = "a".repeat(64);

function usage(s: string, re: RegExp, opts = {}): void {
  try {
    parseRemoteRef(s, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(ErrorCode.USAGE);
    expect((e as PfsError).message).toMatch(re);
    return;
  }
  throw new Error(`${s} was accepted`);
}

describe("oci/remote/ref oci://HOST[:PORT]/REPO(:TAG|@sha256:DIGEST)", () => {
  it("parses tags, digests, ports, nested repositories and IPv6 hosts", () => {
    expect(parseRemoteRef("oci://127.0.0.1:5000/debian:12")).toEqual({ host: "127.0.0.1:5000", hostname: "127.0.0.1", port: 5000, repo: "debian", tag: "12", digest: undefined });
    expect(parseRemoteRef(`oci://registry.example.com/a/b-c/d_e.f@sha256:${D}`)).toEqual({
      host: "registry.example.com",
      hostname: "registry.example.com",
      port: undefined,
      repo: "a/b-c/d_e.f",
      tag: undefined,
      digest: D,
    });
    expect(parseRemoteRef(`oci://[::1]:5443/x:v1.0-rc_1@sha256:${D}`)).toMatchObject({ host: "[::1]:5443", hostname: "::1", port: 5443, repo: "x", tag: "v1.0-rc_1", digest: D });
    expect(parseRemoteRef("oci://localhost/r", { tagOptional: true })).toMatchObject({ repo: "r", tag: undefined, digest: undefined });
  });

  it("refuses what the distribution grammar refuses, naming the part", () => {
    usage("docker://h/r:t", /does not start with oci:\/\//);
    usage("oci://h", /no repository/);
    usage("oci:///r:t", /no repository/);
    usage("oci://h/r", /neither a :TAG nor an @sha256/);
    usage("oci://h/Upper:t", /invalid repository name "Upper"/);
    usage("oci://h/a//b:t", /invalid repository name/);
    usage("oci://h/a-:t", /invalid repository name/);
    usage("oci://h/r:-t", /invalid tag "-t"/);
    usage(`oci://h/r:${"t".repeat(129)}`, /invalid tag/);
    usage("oci://h/r@sha256:ABC", /is not sha256:<64 lowercase hex digits>/);
    usage(`oci://h/r@sha512:${D}`, /is not sha256/);
    usage("oci://h:0/r:t", /port "0" is not 1–65535/);
    usage("oci://h:99999/r:t", /port "99999"/);
    usage("oci://h_x/r:t", /"h_x" is not a host name/);
    usage("oci://[zz]:1/r:t", /not an IPv6 address/);
  });

  it("formats back, the digest winning over nothing but kept with the tag", () => {
    const r = parseRemoteRef("oci://127.0.0.1:5000/a/b:t");
    expect(formatRemoteRef(r)).toBe("oci://127.0.0.1:5000/a/b:t");
    expect(formatRemoteRef(r, { digest: D })).toBe(`oci://127.0.0.1:5000/a/b:t@sha256:${D}`);
    expect(isRemoteRef("oci://x")).toBe(true);
    expect(isRemoteRef("/dir:oci")).toBe(false);
  });

  it("knows loopback hosts", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "x.localhost", "::1"]) expect(isLoopback(h)).toBe(true);
    for (const h of ["10.0.0.1", "128.0.0.1", "localhost.example.com", "::2", "example.com"]) expect(isLoopback(h)).toBe(false);
  });
});
