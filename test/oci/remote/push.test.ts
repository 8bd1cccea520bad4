import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { ErrorCode } from "../../../src/common/errors.ts";
import { canonicalJsonBytes } from "../../../src/oci/json.ts";
import { OciLayout } from "../../../src/oci/layout.ts";
import { EMPTY_CONFIG_DESCRIPTOR, EMPTY_CONFIG_HEX, MediaType, parseManifest, type Descriptor } from "../../../src/oci/manifest.ts";
import { manifestForPush, pushImage } from "../../../src/oci/remote/push.ts";
import { parseRemoteRef } from "../../../src/oci/remote/ref.ts";
import { blobPath, readBlob, sha256hex, tmpDirs } from "../../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../../helpers/registry-stub.ts";

const tmp = tmpDirs("pfs-push-");
let s: StubRegistry;
const MIXED = "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052";
beforeAll(async () => {
  s = await startStubRegistry();
});
afterEach(() => {
  s.hook = null;
  s.requests.length = 0;
});
afterAll(async () => {
  await s.stop();
  tmp.cleanup();
});
const dest = (r: string) => parseRemoteRef(`oci://${s.host}/${r}`, { tagOptional: true });
const opts = { plainHttp: true, deadlineMs: 5000 };

describe("oci/remote/push", () => {
  it("uploads every distinct blob before the manifest, adds mediaType, and reports both digests", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const layout = await OciLayout.open(dir);
    const r = await pushImage(layout, "mixed", dest("pushed/mixed"), opts);
    const local = readBlob(dir, MIXED);
    const pushed = s.manifest("pushed/mixed", "mixed")!;
    expect(r.localDigest).toBe(`sha256:${MIXED}`);
    expect(r.digest).toBe(`sha256:${sha256hex(pushed)}`);
    expect(r.ref).toBe(`oci://${s.host}/pushed/mixed:mixed@${r.digest}`);
    // The pushed manifest is the local one plus mediaType, in canonical JSON.
    const want = { ...JSON.parse(local.toString()), mediaType: MediaType.MANIFEST };
    expect(Buffer.from(pushed).equals(Buffer.from(canonicalJsonBytes(want)))).toBe(true);
    const m = parseManifest(local);
    const distinct = new Set([m.config.digest, ...m.layers.map((l) => l.digest)]);
    expect(r.blobs).toMatchObject({ total: distinct.size, uploaded: distinct.size, present: 0 });
    for (const d of distinct) expect(s.hasBlob("pushed/mixed", d.slice(7))).toBe(true);
    const manifestPut = s.requests.findIndex((q) => q.method === "PUT" && q.path.includes("/manifests/"));
    expect(manifestPut).toBe(s.requests.length - 1);
    expect(s.requests[manifestPut]!.headers["content-type"]).toBe(MediaType.MANIFEST);
    // Linear: HEAD + POST + PUT per new blob, one manifest PUT.
    expect(s.requests.length).toBe(3 * distinct.size + 1);
  });

  it("a second push only HEADs (everything is present) and gives the same digest", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const first = await pushImage(await OciLayout.open(dir), "mixed", dest("again:v1"), opts);
    s.requests.length = 0;
    const second = await pushImage(await OciLayout.open(dir), "mixed", dest("again:v1"), opts);
    expect(second.digest).toBe(first.digest);
    expect(second.blobs).toMatchObject({ uploaded: 0, present: first.blobs.total });
    expect(s.requests.map((q) => q.method).sort()).toEqual([...Array(first.blobs.total).fill("HEAD"), "PUT"].sort());
    expect(s.manifest("again", "v1")).toBeDefined();
  });

  it("a manifest that already has mediaType goes byte for byte (same digest); an embedded config need not exist as a file", async () => {
    const dir = tmp.make();
    const layout = await OciLayout.init(dir);
    const chunk = await layout.blobs.put(new Uint8Array(randomBytes(3000)));
    const layers: Descriptor[] = [{ mediaType: MediaType.FILEDATA, digest: `sha256:${chunk.hex}`, size: 3000 }];
    const d = await layout.putManifest("t", { schemaVersion: 2, mediaType: MediaType.MANIFEST, config: EMPTY_CONFIG_DESCRIPTOR, layers });
    rmSync(blobPath(dir, EMPTY_CONFIG_HEX), { force: true });
    const r = await pushImage(layout, "t", dest("verbatim:other"), opts);
    expect(r.digest).toBe(`sha256:${d.hex}`);
    expect(r.localDigest).toBe(r.digest);
    expect(s.hasBlob("verbatim", EMPTY_CONFIG_HEX)).toBe(true);
    expect(s.manifest("verbatim", "other")).toBeDefined();
    expect(Buffer.from(manifestForPush(readBlob(dir, d.hex), "m")).equals(readBlob(dir, d.hex))).toBe(true);
  });

  it("keeps at most `parallel` blobs in flight, and uses them", async () => {
    const dir = tmp.make();
    const layout = await OciLayout.init(dir);
    await layout.putEmptyConfig();
    const layers: Descriptor[] = [];
    for (let i = 0; i < 12; i++) {
      const b = await layout.blobs.put(new Uint8Array(randomBytes(500)));
      layers.push({ mediaType: MediaType.FILEDATA, digest: `sha256:${b.hex}`, size: 500 });
    }
    await layout.putManifest("p", { schemaVersion: 2, config: EMPTY_CONFIG_DESCRIPTOR, layers });
    let now = 0;
    let peak = 0;
    s.hook = async (q) => {
      if (q.method !== "HEAD") return "pass" as const;
      peak = Math.max(peak, ++now);
      await new Promise((r) => setTimeout(r, 20));
      now--;
      return "pass" as const;
    };
    const r = await pushImage(layout, "p", dest("par:p"), { ...opts, parallel: 3 });
    expect(r.blobs.uploaded).toBe(13);
    expect(peak).toBe(3);
  });

  it("refuses a manifest over 4 MiB before uploading anything, saying how to fix it (also when only mediaType tips it over)", async () => {
    const dir = tmp.make();
    const layout = await OciLayout.init(dir);
    const layers: Descriptor[] = Array.from({ length: 26_000 }, (_, i) => ({
      mediaType: MediaType.FILEDATA,
      digest: `sha256:${sha256hex(Buffer.from(String(i)))}`,
      size: 65536,
    }));
    // Pad the local manifest to 10 bytes under 4 MiB: adding mediaType (~57 bytes) crosses the limit.
    const base = canonicalJsonBytes({ schemaVersion: 2, config: EMPTY_CONFIG_DESCRIPTOR, layers, annotations: { pad: "" } }).length;
    const annotations = { pad: "x".repeat(4 * 1024 * 1024 - 10 - base) };
    const d = await layout.putManifest("edge", { schemaVersion: 2, config: EMPTY_CONFIG_DESCRIPTOR, layers, annotations });
    expect(d.size).toBe(4 * 1024 * 1024 - 10);
    const e = await pushImage(layout, "edge", dest("huge:x"), opts).catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: ErrorCode.LIMIT,
      message: expect.stringMatching(/: 41943\d\d bytes exceeds the 4194304-byte \(4 MiB\) manifest limit registries enforce \(26000 layer descriptors\)/),
      hint: expect.stringMatching(/larger chunks/),
    });
    // A local manifest already over the limit: the same clear refusal.
    await layout.putManifest("huge", { schemaVersion: 2, config: EMPTY_CONFIG_DESCRIPTOR, layers: [...layers, ...layers.slice(0, 4000)] });
    const e2 = await pushImage(layout, "huge", dest("huge:x"), opts).catch((x: unknown) => x);
    expect(e2).toMatchObject({ code: ErrorCode.LIMIT, message: expect.stringMatching(/exceeds the 4194304-byte \(4 MiB\) manifest limit/) });
    expect(s.requests).toEqual([]);
  });

  it("refuses a destination digest, and a missing local blob fails naming it (the manifest is not pushed)", async () => {
    const dir = tmp.copyFixture("mixed-noop");
    const layout = await OciLayout.open(dir);
    await expect(pushImage(layout, "mixed", parseRemoteRef(`oci://${s.host}/x@sha256:${MIXED}`), opts)).rejects.toMatchObject({ code: ErrorCode.USAGE });
    const m = parseManifest(readBlob(dir, MIXED));
    const victim = m.layers[1]!.digest.slice(7);
    rmSync(blobPath(dir, victim));
    await expect(pushImage(layout, "mixed", dest("broken:x"), opts)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND, message: expect.stringContaining(victim) });
    expect(s.manifest("broken", "x")).toBeUndefined();
  });
});
