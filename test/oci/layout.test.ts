import { afterEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, PfsError } from "../../src/common/errors.ts";
import { OciLayout } from "../../src/oci/layout.ts";
import { Annotation, EMPTY_CONFIG_DESCRIPTOR, EMPTY_CONFIG_HEX, MediaType, tagOf, type ImageManifest } from "../../src/oci/manifest.ts";
import { blobPath, fixtureDir, flipByte, tmpDirs } from "../helpers/oci-fixtures.ts";

const tmp = tmpDirs();
afterEach(() => tmp.cleanup());

async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PfsError);
    expect((e as PfsError).code).toBe(code);
    expect((e as PfsError).message).toMatch(re);
    return;
  }
  throw new Error("expected a rejection");
}

const NOOP_MANIFEST = "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c";

describe("oci/layout reading", () => {
  it("resolves tags to verified manifests in every fixture", async () => {
    const l = await OciLayout.open(fixtureDir("sekien-delta-noop"));
    expect(await l.tags()).toEqual(["test", "test2"]);
    const r = await l.readManifest("test2");
    expect(r.hex).toBe("204830e103f0802ea90533d2b5afefbe58100256d8bc99e035f47803aa9ce66f");
    expect(r.manifest.layers[0]!.digest).toBe("sha256:7c331469cc429b0aaccfe63d6a5836c32df8df32f97523975fcc78c1af72af18");
    expect((await l.readManifest("test")).hex).toBe(NOOP_MANIFEST);
  });

  it("unknown tag is NOT_FOUND and lists the available tags", async () => {
    const l = await OciLayout.open(fixtureDir("sekien-delta-noop"));
    try {
      await l.readManifest("nope");
      expect.unreachable();
    } catch (e) {
      expect((e as PfsError).code).toBe(ErrorCode.NOT_FOUND);
      expect((e as PfsError).message).toMatch(/^tag "nope" in .*sekien-delta-noop: not found$/);
      expect((e as PfsError).hint).toBe("available tags: test, test2");
    }
  });

  it("a manifest whose sha256 does not match its name is a DIGEST error", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    flipByte(blobPath(dir, NOOP_MANIFEST), 10);
    await rejects((await OciLayout.open(dir)).readManifest("test"), ErrorCode.DIGEST, new RegExp(`^manifest sha256:${NOOP_MANIFEST} \\(tag "test"\\): sha256 mismatch`));
  });

  it("a manifest whose size differs from the index descriptor is refused", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    writeFileSync(join(dir, "index.json"), readFileSync(join(dir, "index.json"), "utf8").replace('"size":637', '"size":600'));
    await rejects((await OciLayout.open(dir)).readManifest("test"), ErrorCode.FORMAT, /size differs from its descriptor: expected 600, got 637/);
  });

  it("missing manifest blob is NOT_FOUND", async () => {
    const dir = tmp.copyFixture("sekien-noop");
    rmSync(blobPath(dir, NOOP_MANIFEST));
    await rejects((await OciLayout.open(dir)).readManifest("test"), ErrorCode.NOT_FOUND, /^manifest sha256:9514.*: not found$/);
  });

  it("refuses directories that are not OCI layouts", async () => {
    await rejects(OciLayout.open(join(tmp.make(), "nope")), ErrorCode.NOT_FOUND, /OCI directory .*nope: not found/);
    const empty = tmp.make();
    await rejects(OciLayout.open(empty), ErrorCode.NOT_FOUND, /oci-layout: not found/);
    writeFileSync(join(empty, "oci-layout"), '{"imageLayoutVersion":"puzzlefs-dev"}');
    await rejects(OciLayout.open(empty), ErrorCode.UNSUPPORTED, /2023 PuzzleFS format/);
    writeFileSync(join(empty, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}');
    await rejects(OciLayout.open(empty), ErrorCode.FORMAT, /unsupported imageLayoutVersion: expected 1.0.0, got "2.0.0"/);
    writeFileSync(join(empty, "oci-layout"), '{"imageLayoutVersion": "1.0.0"}'); // skopeo's spacing
    const l = await OciLayout.open(empty);
    await rejects(l.tags(), ErrorCode.NOT_FOUND, /index.json: not found/);
    writeFileSync(join(empty, "index.json"), "{oops");
    await rejects(l.tags(), ErrorCode.FORMAT, /index.json: not valid JSON/);
  });
});

describe("oci/layout writing", () => {
  const manifest = (rootHex: string): ImageManifest => ({
    schemaVersion: 2,
    config: EMPTY_CONFIG_DESCRIPTOR,
    layers: [{ mediaType: MediaType.ROOTFS, digest: `sha256:${rootHex}`, size: 3, annotations: { [Annotation.VERITY_ROOT_HASH]: "00".repeat(32) } }],
  });

  it("init creates oci-layout (exact bytes), blobs/sha256 0755; putManifest writes canonical JSON and applies the tag rule", async () => {
    const dir = join(tmp.make(), "img");
    const l = await OciLayout.init(dir);
    expect(readFileSync(join(dir, "oci-layout"), "utf8")).toBe('{"imageLayoutVersion":"1.0.0"}');
    expect(statSync(join(dir, "blobs/sha256")).mode & 0o777).toBe(0o755);
    await l.putEmptyConfig();
    expect(readFileSync(blobPath(dir, EMPTY_CONFIG_HEX), "utf8")).toBe("{}");
    const a = await l.blobs.put(new TextEncoder().encode("abc"));
    const d1 = await l.putManifest("t", manifest(a.hex), { architecture: "amd64", os: "linux" });
    const body = readFileSync(blobPath(dir, d1.hex), "utf8");
    expect(body.startsWith('{"config":{"data":"e30=","digest":"sha256:44136fa3')).toBe(true);
    expect(body).not.toMatch(/\s/);
    const b = await l.blobs.put(new TextEncoder().encode("xyz"));
    const d2 = await l.putManifest("u", manifest(b.hex), { architecture: "amd64", os: "linux" });
    const d3 = await l.putManifest("t", manifest(b.hex), { architecture: "amd64", os: "linux" });
    expect(d3.hex).toBe(d2.hex);
    const idx = readFileSync(join(dir, "index.json"), "utf8");
    expect(idx).toBe(
      `{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"u"},"digest":"sha256:${d2.hex}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"architecture":"amd64","os":"linux"},"size":${d2.size}},` +
        `{"annotations":{"org.opencontainers.image.ref.name":"t"},"digest":"sha256:${d3.hex}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"architecture":"amd64","os":"linux"},"size":${d3.size}}],"schemaVersion":2}`,
    );
    expect(await l.tags()).toEqual(["u", "t"]);
    // Old manifests are never deleted (no GC).
    expect(statSync(blobPath(dir, d1.hex)).isFile()).toBe(true);
    // init on an existing layout keeps it.
    await OciLayout.init(dir);
    expect(await (await OciLayout.open(dir)).tags()).toEqual(["u", "t"]);
  });

  it("skopeo (an independent OCI implementation) reads what we wrote", async () => {
    const dir = join(tmp.make(), "img");
    const l = await OciLayout.init(dir);
    await l.putEmptyConfig();
    const a = await l.blobs.put(new TextEncoder().encode("abc"));
    const d = await l.putManifest("latest", manifest(a.hex));
    const raw = execFileSync("skopeo", ["inspect", "--raw", `oci:${dir}:latest`]);
    expect(raw.toString()).toBe(readFileSync(blobPath(dir, d.hex), "utf8"));
    const out = join(tmp.make(), "copy");
    execFileSync("skopeo", ["copy", "-q", `oci:${dir}:latest`, `oci:${out}:latest`]);
    const copy = await OciLayout.open(out);
    const r = await copy.readManifest("latest");
    expect(r.hex).toBe(d.hex);
    expect(tagOf(r.descriptor)).toBe("latest");
    expect(new TextDecoder().decode(await copy.blobs.get(a.hex))).toBe("abc");
  });
});
