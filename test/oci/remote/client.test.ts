import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { MAX_MANIFEST_BYTES, RegistryClient, registryErrorText } from "../../../src/oci/remote/client.ts";
import { parseRemoteRef } from "../../../src/oci/remote/ref.ts";
import { fixtureDir, sha256hex } from "../../helpers/oci-fixtures.ts";
import { startStubRegistry, type StubRegistry } from "../../helpers/registry-stub.ts";

let s: StubRegistry;
const clients: RegistryClient[] = [];
beforeAll(async () => {
  s = await startStubRegistry();
  s.addLayout("mixed", fixtureDir("mixed-noop"));
});
afterEach(() => {
  s.hook = null;
  s.blobBody = null;
  s.requests.length = 0;
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => s.stop());

function client(repo = "mixed", opts: ConstructorParameters<typeof RegistryClient>[1] = {}) {
  const c = new RegistryClient(parseRemoteRef(`oci://${s.host}/${repo}:t`), { plainHttp: true, deadlineMs: 5000, ...opts });
  clients.push(c);
  return c;
}

const MANIFEST = "e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052";

async function rejection(p: Promise<unknown>): Promise<PfsError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PfsError);
  return e as PfsError;
}

describe("oci/remote/client: pulling", () => {
  it("gets a manifest by tag and by digest with the OCI Accept header (the registry answers 404 without it)", async () => {
    const c = client();
    const m = await c.getManifest("mixed");
    expect(sha256hex(m.bytes)).toBe(MANIFEST);
    expect(m.digest).toBe(`sha256:${MANIFEST}`);
    expect((await c.getManifest(`sha256:${MANIFEST}`)).bytes).toEqual(m.bytes);
    expect(s.requests[0]!.headers.accept).toContain("application/vnd.oci.image.manifest.v1+json");
    const e = await rejection(c.getManifest("nope"));
    expect([e.code, e.message]).toEqual([ErrorCode.NOT_FOUND, `manifest oci://${s.host}/mixed:nope: not found`]);
    expect(e.hint).toMatch(/MANIFEST_UNKNOWN/);
  });

  it("gets a blob whole and verified; a missing one is NOT_FOUND naming the digest (garbage-collected?)", async () => {
    const c = client();
    const jpgless = [...s.blobs.keys()].find((h) => s.blobs.get(h)!.length > 100_000)!;
    const bytes = await c.getBlob(jpgless, { maxSize: 1 << 20 });
    expect(sha256hex(bytes)).toBe(jpgless);
    const gone = sha256hex(new Uint8Array([1, 2, 3]));
    const e = await rejection(c.getBlob(gone, { maxSize: 100, what: `chunk blob sha256:${gone}` }));
    expect(e.code).toBe(ErrorCode.NOT_FOUND);
    expect(e.message).toBe(`chunk blob sha256:${gone}: not found in oci://${s.host}/mixed (BLOB_UNKNOWN: blob unknown to registry)`);
    expect(e.hint).toMatch(/garbage-collected/);
  });

  it("refuses a blob larger than its descriptor or the cap before or while reading it", async () => {
    const hex = s.addBlob("mixed", new Uint8Array(randomBytes(5000)));
    const c = client();
    expect((await rejection(c.getBlob(hex, { maxSize: 4000 }))).code).toBe(ErrorCode.LIMIT);
    expect((await rejection(c.getBlob(hex, { maxSize: 1 << 20, expectedSize: 4999 }))).code).toBe(ErrorCode.LIMIT);
    expect((await rejection(c.getBlob(hex, { maxSize: 1 << 20, expectedSize: 5001 }))).code).toBe(ErrorCode.FORMAT);
    expect((await rejection(c.getBlob(hex, { maxSize: 10, expectedSize: 5000 }))).code).toBe(ErrorCode.LIMIT);
  });

  it("resumes a body that broke off with a Range request for the rest", async () => {
    const data = new Uint8Array(randomBytes(100_000));
    const hex = s.addBlob("mixed", data);
    s.cutBlobs.set(hex, 30_000);
    const c = client();
    const got = await c.getBlob(hex, { maxSize: 1 << 20, expectedSize: data.length });
    expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
    const gets = s.requests.filter((r) => r.path.includes(hex));
    expect(gets.map((r) => r.headers.range ?? null)).toEqual([null, expect.stringMatching(/^bytes=\d+-$/)]);
    expect(Number(/bytes=(\d+)-/.exec(gets[1]!.headers.range!)![1])).toBeGreaterThan(0);
  });

  it("fetches again once when the bytes do not hash to the digest, then refuses (DIGEST) without returning them", async () => {
    const data = new Uint8Array(randomBytes(2000));
    const hex = s.addBlob("mixed", data);
    const c = client();
    let bad = 1;
    s.blobBody = (h, b) => {
      if (h !== hex || bad-- <= 0) return b;
      const x = Uint8Array.from(b);
      x[7] ^= 1;
      return x;
    };
    expect(sha256hex(await c.getBlob(hex, { maxSize: 1 << 20 }))).toBe(hex); // a transient flip heals
    s.blobBody = (h, b) => (h === hex ? Uint8Array.from(b, (v, i) => (i === 7 ? v ^ 1 : v)) : b);
    const e = await rejection(c.getBlob(hex, { maxSize: 1 << 20, what: "chunk blob X" }));
    expect(e.code).toBe(ErrorCode.DIGEST);
    expect(e.message).toMatch(new RegExp(`^chunk blob X from oci://${s.host}/mixed: sha256 mismatch: expected ${hex}, got [0-9a-f]{64}$`));
    expect(s.requests.filter((r) => r.path.includes(hex)).length).toBe(4);
  });

  it("retries 503, 429 (Retry-After) and dropped connections, then succeeds", async () => {
    const hex = s.addBlob("mixed", new TextEncoder().encode("retry me"));
    const answers: Array<"drop" | { status: number; headers?: Record<string, string> }> = [{ status: 503 }, "drop", { status: 429, headers: { "retry-after": "0" } }];
    s.hook = (r) => (r.path.includes(hex) ? (answers.shift() ?? "pass") : "pass");
    const c = client();
    expect(Buffer.from(await c.getBlob(hex, { maxSize: 100 })).toString()).toBe("retry me");
    expect(c.stats.retries).toBe(3);
  });

  it("gives up at the deadline with an IO error naming the blob and the registry; works again afterwards", async () => {
    const hex = s.addBlob("mixed", new TextEncoder().encode("later"));
    s.hook = (r) => (r.path.includes(hex) ? { status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"down"}]}' } : "pass");
    const c = client("mixed", { deadlineMs: 600 });
    const e = await rejection(c.getBlob(hex, { maxSize: 100, what: `chunk blob sha256:${hex}` }));
    expect(e.code).toBe(ErrorCode.IO);
    expect(e.message).toMatch(new RegExp(`^chunk blob sha256:${hex} from oci://${s.host}/mixed: ${s.host} did not answer within 0\\.6 s \\(last: .*UNAVAILABLE: down\\)$`));
    s.hook = null;
    expect(Buffer.from(await c.getBlob(hex, { maxSize: 100 })).toString()).toBe("later");
  });

  it("a registry that never answers is abandoned at the deadline (no request outlives it)", async () => {
    const hex = s.addBlob("mixed", new TextEncoder().encode("hang"));
    s.hook = (r) => (r.path.includes(hex) ? new Promise(() => {}) : "pass");
    const c = client("mixed", { deadlineMs: 500, idleTimeoutMs: 60_000 });
    const e = await rejection(c.getBlob(hex, { maxSize: 100 }));
    expect([e.code, e.data.errno]).toEqual([ErrorCode.IO, "ETIMEDOUT"]);
  });

  it("time queued behind other fetches does not count against a blob's deadline (a busy registry is not a dead one)", async () => {
    const blobs = Array.from({ length: 3 }, (_, i) => s.addBlob("mixed", new TextEncoder().encode(`queued ${i}`)));
    s.hook = async (r) => {
      if (blobs.some((h) => r.path.endsWith(h))) await new Promise((res) => setTimeout(res, 300));
      return "pass" as const;
    };
    const c = client("mixed", { deadlineMs: 500, concurrency: 1 });
    const got = await Promise.all(blobs.map((h) => c.getBlob(h, { maxSize: 100 })));
    expect(got.map((b) => Buffer.from(b).toString())).toEqual(["queued 0", "queued 1", "queued 2"]);
    expect(c.stats.retries).toBe(0);
  });

  it("lists tags across Link pages", async () => {
    let page = 0;
    s.hook = (r) => {
      if (!r.path.includes("/tags/list")) return "pass";
      page++;
      if (page === 1) return { status: 200, headers: { link: `</v2/mixed/tags/list?last=a&n=1>; rel="next"`, "content-type": "application/json" }, body: '{"name":"mixed","tags":["a"]}' };
      return { status: 200, body: '{"name":"mixed","tags":["b"]}' };
    };
    expect(await client().listTags()).toEqual(["a", "b"]);
    expect(s.requests.filter((r) => r.path.includes("tags")).map((r) => r.path)).toEqual(["/v2/mixed/tags/list", "/v2/mixed/tags/list?last=a&n=1"]);
  });

  it("renders registry error bodies", () => {
    const res = (status: number, body: string) => ({ status, headers: {}, body: new TextEncoder().encode(body), url: new URL("http://x") });
    expect(registryErrorText(res(404, '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":"x"}]}'))).toBe("BLOB_UNKNOWN: blob unknown");
    expect(registryErrorText(res(404, "404 page not found\n"))).toBe("HTTP 404 404 page not found");
  });
});

describe("oci/remote/client: pushing", () => {
  it("uploads with POST then PUT ?digest= (keeping the upload state in the Location), and PUTs a manifest with its media type", async () => {
    const c = client("pushed", { push: true });
    const data = new TextEncoder().encode("new blob");
    const hex = sha256hex(data);
    expect(await c.headBlob(hex)).toBeNull();
    await c.uploadBlob(hex, data);
    expect(s.hasBlob("pushed", hex)).toBe(true);
    expect(await c.headBlob(hex)).toBe(data.length);
    const put = s.requests.find((r) => r.method === "PUT")!;
    expect(put.path).toMatch(new RegExp(`^/v2/pushed/blobs/uploads/[0-9a-f-]+\\?_state=\\w+&digest=sha256%3A${hex}$`));
    const manifest = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "x", digest: `sha256:${hex}`, size: 8 }, layers: [] }));
    expect(await c.putManifest("v1", manifest)).toBe(`sha256:${sha256hex(manifest)}`);
    expect(Buffer.from(s.manifest("pushed", "v1")!).equals(Buffer.from(manifest))).toBe(true);
  });

  it("refuses a manifest over 4 MiB without sending it", async () => {
    const c = client("pushed", { push: true });
    const e = await rejection(c.putManifest("big", new Uint8Array(MAX_MANIFEST_BYTES + 1)));
    expect(e.code).toBe(ErrorCode.LIMIT);
    expect(s.requests.length).toBe(0);
  });
});
