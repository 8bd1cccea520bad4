import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import { ErrorCode, PfsError } from "../../../src/common/errors.ts";
import { HttpTransport, TransportError, isTlsTrustError } from "../../../src/oci/remote/http.ts";
import { tmpDirs } from "../../helpers/oci-fixtures.ts";
import { makePki, type TestPki } from "../../helpers/registry-pki.ts";
import { startStubRegistry, type StubRegistry } from "../../helpers/registry-stub.ts";

const tmp = tmpDirs("pfs-http-");
let pki: TestPki;
let plain: StubRegistry;
let cdn: StubRegistry;
let tls: StubRegistry;
const loopback = (u: URL) => u.hostname === "127.0.0.1";

beforeAll(async () => {
  pki = await makePki(tmp.make());
  plain = await startStubRegistry();
  cdn = await startStubRegistry();
  tls = await startStubRegistry({ tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
});
afterAll(async () => {
  await Promise.all([plain.stop(), cdn.stop(), tls.stop()]);
  tmp.cleanup();
});

async function rawServer(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`,
    close: () => new Promise((r) => (s.closeAllConnections(), s.close(() => r()))),
  };
}

describe("oci/remote/http transport", () => {
  it("follows a blob redirect to another origin keeping Range and dropping Authorization (as fetch and curl -L do)", async () => {
    const hex = plain.addBlob("r", new TextEncoder().encode("0123456789"));
    cdn.addBlob("r", new TextEncoder().encode("0123456789"));
    plain.redirectBlobsTo = cdn.origin;
    const t = new HttpTransport({ allowHttp: loopback });
    try {
      const res = await t.request(new URL(`${plain.origin}/v2/r/blobs/sha256:${hex}`), { method: "GET", headers: { authorization: "Basic c2VjcmV0", range: "bytes=2-4" }, maxBody: 100 });
      expect(res.status).toBe(206);
      expect(Buffer.from(res.body).toString()).toBe("234");
      expect(res.url.origin).toBe(cdn.origin);
      expect(plain.requests.at(-1)!.headers.authorization).toBe("Basic c2VjcmV0");
      const atCdn = cdn.requests.at(-1)!;
      expect(atCdn.path).toBe(`/cdn/${hex}`);
      expect(atCdn.headers.authorization).toBeUndefined();
      expect(atCdn.headers.range).toBe("bytes=2-4");
    } finally {
      plain.redirectBlobsTo = null;
      t.close();
    }
  });

  it("keeps Authorization on a same-origin redirect, and stops after 5 hops", async () => {
    let hops = 0;
    const srv = await rawServer((req, res) => {
      if (req.url === "/final") return res.end(req.headers.authorization ?? "none");
      hops++;
      res.writeHead(307, { location: req.url === "/loop" ? "/loop" : "/final" }).end();
    });
    const t = new HttpTransport({ allowHttp: loopback });
    try {
      const ok = await t.request(new URL(`${srv.url}/start`), { method: "GET", headers: { authorization: "Bearer x" }, maxBody: 100 });
      expect(Buffer.from(ok.body).toString()).toBe("Bearer x");
      hops = 0;
      const loop = await t.request(new URL(`${srv.url}/loop`), { method: "GET", maxBody: 100 });
      expect([loop.status, hops]).toEqual([307, 6]);
      const put = await t.request(new URL(`${srv.url}/start`), { method: "PUT", body: new Uint8Array(1), maxBody: 100 });
      expect(put.status).toBe(307); // never re-sends a body elsewhere
    } finally {
      t.close();
      await srv.close();
    }
  });

  it("refuses plain http where it is not allowed, and an https → http redirect downgrade", async () => {
    const t = new HttpTransport({ allowHttp: () => false });
    await expect(t.request(new URL(`${plain.origin}/v2/`), { method: "GET", maxBody: 10 })).rejects.toMatchObject({ code: ErrorCode.USAGE, message: expect.stringMatching(/refusing plain HTTP to 127\.0\.0\.1:\d+/) });
    const hex = tls.addBlob("r", new Uint8Array([1, 2, 3]));
    tls.redirectBlobsTo = plain.origin;
    const t2 = new HttpTransport({ ca: readFileSync(pki.caCert), allowHttp: () => false });
    try {
      await expect(t2.request(new URL(`${tls.origin}/v2/r/blobs/sha256:${hex}`), { method: "GET", maxBody: 10 })).rejects.toThrow(/refusing the downgrade|refusing plain HTTP/);
    } finally {
      tls.redirectBlobsTo = null;
      t.close();
      t2.close();
    }
  });

  it("trusts a registry certificate through the given CA only", async () => {
    const hex = tls.addBlob("r", new TextEncoder().encode("tls bytes"));
    const url = new URL(`${tls.origin}/v2/r/blobs/sha256:${hex}`);
    const good = new HttpTransport({ ca: readFileSync(pki.caCert) });
    const bad = new HttpTransport();
    try {
      expect(Buffer.from((await good.request(url, { method: "GET", maxBody: 100 })).body).toString()).toBe("tls bytes");
      const e = await bad.request(url, { method: "GET", maxBody: 100 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(TransportError);
      expect(isTlsTrustError((e as TransportError).code)).toBe(true);
    } finally {
      good.close();
      bad.close();
    }
  });

  it("caps bodies (by Content-Length before reading, and while streaming), and reports a body cut short with its partial bytes", async () => {
    const srv = await rawServer((req, res) => {
      if (req.url === "/declared") return res.writeHead(200, { "content-length": "1000" }).end(Buffer.alloc(1000));
      if (req.url === "/chunked") {
        res.writeHead(200, { "transfer-encoding": "chunked" });
        return res.end(Buffer.alloc(1000));
      }
      res.writeHead(200, { "content-length": "100", "accept-ranges": "bytes" });
      res.write(Buffer.alloc(40, 7), () => res.destroy());
    });
    const t = new HttpTransport({ allowHttp: loopback });
    try {
      for (const p of ["/declared", "/chunked"]) {
        await expect(t.request(new URL(srv.url + p), { method: "GET", maxBody: 999 })).rejects.toMatchObject({ code: ErrorCode.LIMIT });
      }
      const e = (await t.request(new URL(`${srv.url}/cut`), { method: "GET", maxBody: 1000 }).catch((x: unknown) => x)) as TransportError;
      expect(e).toBeInstanceOf(TransportError);
      expect(e.partial?.status).toBe(200);
      expect(e.partial?.bytes.length).toBe(40);
    } finally {
      t.close();
      await srv.close();
    }
  });

  it("fails a request with no socket activity for idleTimeoutMs (ETIMEDOUT), and one refused (ECONNREFUSED)", async () => {
    const srv = await rawServer(() => {
      /* never answers */
    });
    const t = new HttpTransport({ allowHttp: loopback, idleTimeoutMs: 200 });
    try {
      await expect(t.request(new URL(srv.url), { method: "GET", maxBody: 10 })).rejects.toMatchObject({ code: "ETIMEDOUT" });
      await srv.close();
      await expect(t.request(new URL(srv.url), { method: "GET", maxBody: 10 })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    } finally {
      t.close();
    }
  });

  it("PfsError vs TransportError: HTTP statuses are answers, not errors", async () => {
    const t = new HttpTransport({ allowHttp: loopback });
    try {
      const r = await t.request(new URL(`${plain.origin}/v2/nope/blobs/sha256:${"0".repeat(64)}`), { method: "GET", maxBody: 1000 });
      expect(r.status).toBe(404);
      expect(JSON.parse(Buffer.from(r.body).toString()).errors[0].code).toBe("BLOB_UNKNOWN");
      expect(r).not.toBeInstanceOf(PfsError);
    } finally {
      t.close();
    }
  });
});
