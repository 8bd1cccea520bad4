import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Annotation,
  EMPTY_CONFIG_BYTES,
  EMPTY_CONFIG_DESCRIPTOR,
  EMPTY_CONFIG_HEX,
  MediaType,
  parseIndex,
  parseManifest,
  tagOf,
  withTaggedManifest,
  type Descriptor,
  type ImageIndex,
} from "../../src/oci/manifest.ts";
import { fixtureDir, readBlob, sha256hex } from "../helpers/oci-fixtures.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const desc = (n: number, tag?: string): Descriptor => ({
  mediaType: MediaType.MANIFEST,
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: n,
  ...(tag ? { annotations: { [Annotation.REF_NAME]: tag } } : {}),
});

describe("oci/manifest", () => {
  it("the empty config is the 2-byte {} with the spec's digest", () => {
    expect(new TextDecoder().decode(EMPTY_CONFIG_BYTES)).toBe("{}");
    expect(sha256hex(EMPTY_CONFIG_BYTES)).toBe(EMPTY_CONFIG_HEX);
    expect(Buffer.from(EMPTY_CONFIG_DESCRIPTOR.data!, "base64").toString()).toBe("{}");
  });

  it("parses the mixed-noop manifest: config, rootfs layer with verity annotation, 4 filedata layers", () => {
    const dir = fixtureDir("mixed-noop");
    const m = parseManifest(readBlob(dir, "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052"));
    expect(m.config).toEqual(EMPTY_CONFIG_DESCRIPTOR);
    expect(m.layers.map((l) => l.mediaType)).toEqual([MediaType.ROOTFS, ...Array(4).fill(MediaType.FILEDATA)]);
    expect(m.layers[0]!.annotations![Annotation.VERITY_ROOT_HASH]).toBe("ba4a437bacf9ed2646396a1fd5575ff7598bcf61ff3f14bb0c4088e881af5436");
    expect(m.layers.map((l) => l.size)).toEqual([1584, 152560, 72716, 58762, 15971]);
  });

  it("zstd fixture uses the filedata.v1+zstd media type", () => {
    const m = parseManifest(readBlob(fixtureDir("sekien-zstd"), "ef745b9730dbfbc9fb506069e98fcbf2e874ff9f05f343a941d43e9d352b3dff"));
    expect(m.layers[1]!.mediaType).toBe(MediaType.FILEDATA_ZSTD);
  });

  it("parses index.json and finds tags", () => {
    const idx = parseIndex(readFileSync(join(fixtureDir("sekien-delta-noop"), "index.json")));
    expect(idx.manifests.map(tagOf)).toEqual(["test", "test2"]);
    expect(idx.manifests[0]!.platform).toEqual({ architecture: "amd64", os: "linux" });
  });

  it("refuses malformed manifests with errors naming the field", () => {
    const good = JSON.parse(readBlob(fixtureDir("sekien-noop"), "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c").toString());
    expect(() => parseManifest(enc({ ...good, schemaVersion: 1 }), "M")).toThrow("M: unsupported schemaVersion: expected 2, got 1");
    expect(() => parseManifest(enc({ ...good, layers: {} }), "M")).toThrow('M: field "layers" must be a list');
    const badLayer = { ...good, layers: [{ ...good.layers[0], size: -1 }] };
    expect(() => parseManifest(enc(badLayer), "M")).toThrow('M layers[0]: field "size" must be a non-negative integer');
    const badDigest = { ...good, layers: [{ ...good.layers[0], digest: "sha256:zz" }] };
    expect(() => parseManifest(enc(badDigest), "M")).toThrow(/M layers\[0\] digest: malformed digest/);
    expect(() => parseManifest(enc({ ...good, mediaType: MediaType.INDEX }), "M")).toThrow(/wrong mediaType/);
    expect(() => parseManifest(enc("[]"), "M")).toThrow("M: must be a JSON object");
    expect(() => parseManifest(enc({ ...good, config: undefined }), "M")).toThrow("M config: descriptor must be an object");
  });

  it("tag write rule: removes every descriptor with the tag, appends the new one last (spec §1.3)", () => {
    const idx: ImageIndex = { schemaVersion: 2, manifests: [desc(1, "a"), desc(2, "b"), desc(3, "a"), desc(4)] };
    const next = withTaggedManifest(idx, "a", desc(5));
    expect(next.manifests.map((d) => [d.size, tagOf(d)])).toEqual([
      [2, "b"],
      [4, undefined],
      [5, "a"],
    ]);
    expect(idx.manifests).toHaveLength(4); // input untouched
    expect(withTaggedManifest(next, "c", desc(6)).manifests.map((d) => tagOf(d))).toEqual(["b", undefined, "a", "c"]);
  });
});
