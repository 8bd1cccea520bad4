/**
 * The server against real clients (libnbd-bin, qemu-utils, python3-libnbd)
 * and, for extended headers which Debian's clients predate, a raw socket.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NbdServer, type ConnectionStats, type RequestErrorInfo } from "../../src/nbd/server.ts";
import { RawFileDevice } from "../../src/nbd/rawfile.ts";
import { MemDevice, StripedDevice, pattern } from "./helpers/memdev.ts";
import { RawClient, type Running, pyCase, run, sha256, startServer } from "./helpers/net.ts";
import { CMD, CMDF, type Chunk, type OptReply, ERR, OPT, REP, RT, assemble, errorChunk, extRequest, goData, metaData, option, statusChunk } from "./helpers/proto.ts";

const MiB = 1 << 20;
const SIZE = 4 * MiB;
const bytes = pattern(SIZE, 5);
const zeros: [number, number][] = [[MiB, MiB], [3 * MiB + 65536, MiB - 65536]];
const sparseBytes = Buffer.from(bytes);
for (const [o, n] of zeros) sparseBytes.fill(0, o, o + n);
const BAD: [number, number] = [2 * MiB + 8192, 2 * MiB + 8192 + 100];

let dir: string;
let raw: RawFileDevice;
let srv: Running;
const ended: ConnectionStats[] = [];
const reqErrors: RequestErrorInfo[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pfs-nbd-"));
  await writeFile(join(dir, "raw.img"), bytes);
  await writeFile(join(dir, "sparse.img"), sparseBytes);
  raw = await RawFileDevice.open(join(dir, "raw.img"));
  srv = await startServer({
    raw: { device: raw, description: "raw image file" },
    sparse: { device: new MemDevice(bytes, { zeros }), description: "with holes" },
    bad: { device: new MemDevice(bytes, { bad: BAD }) },
  });
  srv.server.on("connection-end", (s: ConnectionStats) => ended.push(s));
  srv.server.on("request-error", (e: RequestErrorInfo) => reqErrors.push(e));
});

afterAll(async () => {
  await srv?.stop();
  await raw?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("nbdinfo", () => {
  it("--list shows every export with its size, description and flags", async () => {
    const r = await run("nbdinfo", ["--list", "--json", srv.uri()]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.protocol).toBe("newstyle-fixed");
    const byName = Object.fromEntries(j.exports.map((e: Record<string, unknown>) => [e["export-name"], e]));
    expect(Object.keys(byName).sort()).toEqual(["bad", "raw", "sparse"]);
    expect(byName.raw).toMatchObject({ description: "raw image file", "export-size": SIZE, is_read_only: true, can_multi_conn: true, can_cache: true, can_flush: true, can_df: true, can_trim: false, can_zero: false, block_size_minimum: 1, block_size_preferred: 4096, block_size_maximum: 32 * MiB });
    expect(byName.raw.contexts).toEqual(["base:allocation"]);
  });

  it("--map reports holes from the device's allocation map and data elsewhere", async () => {
    const r = await run("nbdinfo", ["--map", srv.uri("sparse")]);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/));
    expect(rows.map((c) => [Number(c[0]), Number(c[1]), Number(c[2])])).toEqual([
      [0, MiB, 0], [MiB, MiB, 3], [2 * MiB, MiB + 65536, 0], [3 * MiB + 65536, MiB - 65536, 3],
    ]);
    const plain = await run("nbdinfo", ["--map", srv.uri("raw")]);
    expect(plain.stdout.trim().split(/\s+/).slice(0, 3).map(Number)).toEqual([0, SIZE, 0]);
  });

  it("an unknown export name fails cleanly", async () => {
    const r = await run("nbdinfo", [srv.uri("nope")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/server replied with error to opt_go request/);
  });
});

describe("nbdcopy and qemu", () => {
  it("nbdcopy copies the raw export byte for byte", async () => {
    const out = join(dir, "copy.img");
    const r = await run("nbdcopy", [srv.uri("raw"), out]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it("nbdcopy --connections=4 spreads one copy over 4 connections (multi-conn), byte for byte", async () => {
    // nbdcopy hands each thread 128 MiB of the disk: use a 512 MiB export with
    // 1 MiB of data at the start of every 128 MiB, the rest holes.
    const big = new StripedDevice(512 * MiB, 128 * MiB, MiB);
    const s = await startServer({ big: { device: big } });
    const stats: ConnectionStats[] = [];
    s.server.on("connection-end", (st: ConnectionStats) => stats.push(st));
    try {
      const out = join(dir, "big.img");
      const r = await run("nbdcopy", ["--connections=4", "--threads=4", s.uri("big"), out]);
      expect(r.code, r.stderr).toBe(0);
      const cmp = await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", s.uri("big"), out]);
      expect(cmp.stdout + cmp.stderr).toContain("Images are identical.");
      const f = await readFile(out);
      expect(f.length).toBe(512 * MiB);
      for (const o of [0, 128 * MiB + 12345, 511 * MiB]) {
        expect(f.subarray(o, o + 4096).equals(Buffer.from(await big.read(o, 4096))), `@${o}`).toBe(true);
      }
      await rm(out);
    } finally {
      await s.stop();
    }
    const copy = stats.slice(0, 4);
    expect(copy.every((c) => c.export === "big" && c.reason === "NBD_CMD_DISC")).toBe(true);
    expect(copy.filter((c) => c.requests > 0).length).toBeGreaterThanOrEqual(2);
    expect(copy.reduce((a, c) => a + c.bytes, 0)).toBe(4 * MiB);
  });

  it("nbdcopy of an export with holes equals the bytes (holes read as zeros)", async () => {
    const out = join(dir, "sparsecopy.img");
    const r = await run("nbdcopy", [srv.uri("sparse"), out]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(sparseBytes)).toBe(true);
  });

  it("qemu-img compare finds the exports identical to their files", async () => {
    for (const [name, file] of [["raw", "raw.img"], ["sparse", "sparse.img"]]) {
      const r = await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", srv.uri(name), join(dir, file!)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("Images are identical.");
    }
    const diff = await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", srv.uri("raw"), join(dir, "sparse.img")]);
    expect(diff.code).toBe(1);
  });

  it("qemu-nbd --list sees the exports with nbdkit's flags; qemu-img map sees the holes", async () => {
    const list = await run("qemu-nbd", ["--list", "-b", "127.0.0.1", "-p", String(srv.port)]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain("exports available: 3");
    expect(list.stdout).toMatch(/export: 'sparse'\n\s+description: with holes\n\s+size:\s+4194304\n\s+flags: 0x587 \( readonly flush df multi cache \)/);
    expect(list.stdout).toMatch(/min block: 1\n\s+opt block: 4096\n\s+max block: 33554432/);
    const map = await run("qemu-img", ["map", "--output=json", "-f", "raw", srv.uri("sparse")]);
    expect(map.code, map.stderr).toBe(0);
    const rows = JSON.parse(map.stdout).map((r: { start: number; length: number; data: boolean; zero: boolean }) => [r.start, r.length, r.data, r.zero]);
    expect(rows).toEqual([[0, MiB, true, false], [MiB, MiB, false, true], [2 * MiB, MiB + 65536, true, false], [3 * MiB + 65536, MiB - 65536, false, true]]);
  });

  it("qemu-io reads patterns and hexdumps the right bytes", async () => {
    const zero = await run("qemu-io", ["-r", "-f", "raw", "-c", `read -P 0 ${MiB} ${MiB}`, srv.uri("sparse")]);
    expect(zero.code, zero.stderr).toBe(0);
    expect(zero.stdout).toContain(`read ${MiB}/${MiB} bytes at offset ${MiB}`);
    const notZero = await run("qemu-io", ["-r", "-f", "raw", "-c", "read -P 0 0 4096", srv.uri("sparse")]);
    expect(notZero.stdout + notZero.stderr).toContain("Pattern verification failed");
    const dump = await run("qemu-io", ["-r", "-f", "raw", "-c", "read -v 1000 16", srv.uri("raw")]);
    const hex = dump.stdout.split("\n")[0]!.split(":")[1]!.trim().split(/\s+/).slice(0, 16).join("");
    expect(hex).toBe(bytes.subarray(1000, 1016).toString("hex"));
  });
});

describe("libnbd scripted cases (python3 -m nbd binding)", () => {
  it("option mode: LIST, INFO (unknown and known), LIST_META_CONTEXT, GO, ABORT; non-fixed newstyle refused", async () => {
    const r = await pyCase<Record<string, any>>("handshake", srv.uri(), "sparse");
    expect(r.list_count).toBe(3);
    expect(r.list).toEqual([["raw", "raw image file"], ["sparse", "with holes"], ["bad", ""]]);
    expect(r.info_unknown).toBe("ENOENT");
    expect(r.info).toEqual({ size: SIZE, canonical: "sparse", description: "with holes", block: [1, 4096, 32 * MiB] });
    expect(r.meta_contexts).toEqual(["base:allocation"]);
    expect(r.flags).toEqual({ read_only: true, flush: true, cache: true, multi_conn: true, df: true, trim: false, zero: false, fua: false });
    expect(r.protocol).toBe("newstyle-fixed");
    expect(r.first).toBe(sha256(sparseBytes.subarray(0, 4096)));
    expect(r.abort_closed).toBe(true);
    expect(r.non_fixed).not.toBe("ok");
  });

  for (const structured of [true, false]) {
    it(`every command and error with ${structured ? "structured" : "simple"} replies`, async () => {
      const r = await pyCase<Record<string, any>>("commands", srv.uri("sparse"), structured ? "1" : "0", SIZE);
      expect(r.structured).toBe(structured);
      expect(r.df).toBe(structured);
      expect(r.read).toBe(sha256(sparseBytes.subarray(0, 65536)));
      expect(r.tail).toBe(sha256(sparseBytes.subarray(SIZE - 4096)));
      expect(r).toMatchObject({
        past_end: "EINVAL", beyond: "EINVAL", zero_length: "EINVAL", write: "EPERM", trim: "EPERM", write_zeroes: "EPERM",
        flush: "ok", cache: "ok", cache_past_end: "EINVAL", fua_read: "EINVAL", aio_done: 64,
      });
      expect(r.after_past_end).toBe(sha256(sparseBytes.subarray(4096, 8192)));
      expect(r.still_ok).toBe(r.read);
      expect(r.in_flight_max).toBeGreaterThan(1);
      if (structured) {
        expect(r.df_read).toBe(r.read);
        // libnbd status: 1 = data, 2 = hole
        expect(r.chunks).toEqual([[0, MiB, 1], [MiB, MiB, 2], [2 * MiB, MiB + 65536, 1], [3 * MiB + 65536, MiB - 65536, 2]]);
        expect(r.extents).toEqual([["base:allocation", 0, [MiB, 0, MiB, 3, MiB + 65536, 0, MiB - 65536, 3]]]);
        expect(r.req_one).toEqual([[MiB, 0]]);
        expect(r.status_past_end).toBe("EINVAL");
      } else {
        expect(r.df_read).toBe("EINVAL");
      }
    });
  }

  it("a read over a chunk that fails its digest is EIO (ERROR_OFFSET at the bad byte); the next read succeeds", async () => {
    const before = reqErrors.length;
    // [2 MiB, 2 MiB + 64 KiB) contains BAD, which starts 8 KiB in.
    const off = 2 * MiB;
    const len = 65536;
    const r = await pyCase<Record<string, any>>("readerr", srv.uri("bad"), "1", off, len);
    expect(r.bad).toBe("EIO");
    expect(r.structured).toBe("EIO");
    expect(r.chunks).toEqual([[BAD[0], 0, 3, 5]]); // libnbd READ_ERROR at the first bad byte, errno EIO
    expect(r.good_before).toBe(sha256(bytes.subarray(off - 4096, off)));
    expect(r.good_after).toBe(sha256(bytes.subarray(off + len, off + len + 4096)));
    const simple = await pyCase<Record<string, any>>("readerr", srv.uri("bad"), "0", off, len);
    expect(simple.bad).toBe("EIO");
    expect(simple.good_after).toBe(sha256(bytes.subarray(off + len, off + len + 4096)));
    const errs = reqErrors.slice(before);
    expect(errs.length).toBe(3);
    expect(errs.every((e) => e.export === "bad" && e.errno === ERR.EIO && e.offset === off)).toBe(true);
  });
});

describe("out-of-order replies", () => {
  it("replies as reads complete, not in request order", async () => {
    const dev = new MemDevice(pattern(64 * 4096, 2));
    dev.delay = (off) => 10 * (16 - off / 4096); // earlier offsets finish later
    const s = await startServer({ slow: { device: dev } });
    try {
      const r = await pyCase<{ order: number[] }>("aio_order", s.uri("slow"), 16);
      expect(r.order.length).toBe(16);
      expect(r.order).not.toEqual([...r.order].sort((a, b) => a - b));
      expect(r.order[0]).toBe(15);
    } finally {
      await s.stop();
    }
  });
});

describe("extended headers (byte level; Debian's libnbd 1.14 predates them)", () => {
  it("negotiates, reads with 32-byte headers, reports BLOCK_STATUS_EXT and errors, then disconnects", async () => {
    const c = await RawClient.connect(srv.port);
    try {
      await c.handshake();
      c.send(option(OPT.EXTENDED_HEADERS));
      expect(await c.reply()).toMatchObject({ option: OPT.EXTENDED_HEADERS, type: REP.ACK });
      c.send(option(OPT.SET_META, metaData("sparse", ["base:allocation"])));
      expect(await c.reply()).toMatchObject({ type: REP.META_CONTEXT });
      expect(await c.reply()).toMatchObject({ type: REP.ACK });
      c.send(option(OPT.GO, goData("sparse")));
      for (;;) if (((await c.reply()) as OptReply).type === REP.ACK) break;
      c.reader.phase = "transmission";

      c.send(extRequest({ type: CMD.READ, cookie: 1, offset: MiB - 4096, length: 8192 }));
      const chunks: Chunk[] = [];
      for (;;) {
        const r = (await c.reply()) as Chunk;
        expect(r).toMatchObject({ kind: "chunk", cookie: 1n, reqOffset: BigInt(MiB - 4096) });
        chunks.push(r);
        if (r.flags & 1) break;
      }
      expect(chunks.map((x) => x.type)).toEqual([RT.OFFSET_DATA, RT.OFFSET_HOLE]);
      expect(assemble(chunks, MiB - 4096, 8192).data.equals(sparseBytes.subarray(MiB - 4096, MiB + 4096))).toBe(true);

      c.send(extRequest({ type: CMD.BLOCK_STATUS, cookie: 2, offset: 0, length: SIZE }));
      const st = (await c.reply()) as Chunk;
      expect(st.type).toBe(RT.BLOCK_STATUS_EXT);
      expect(statusChunk(st).extents).toEqual([[MiB, 0], [MiB, 3], [MiB + 65536, 0], [MiB - 65536, 3]]);

      c.send(extRequest({ type: CMD.READ, cookie: 3, offset: 0, length: 2n ** 32n }));
      const e = (await c.reply()) as Chunk;
      expect([e.type, errorChunk(e).error]).toEqual([RT.ERROR, ERR.EINVAL]);

      c.send(extRequest({ type: CMD.WRITE, cookie: 4, flags: CMDF.PAYLOAD_LEN, offset: 0, length: 4096, payload: Buffer.alloc(4096) }));
      const w = (await c.reply()) as Chunk;
      expect([w.cookie, errorChunk(w).error]).toEqual([4n, ERR.EPERM]);

      c.send(extRequest({ type: CMD.FLUSH, cookie: 5 }));
      expect(await c.reply()).toMatchObject({ type: RT.NONE, flags: 1, cookie: 5n });

      c.send(extRequest({ type: CMD.DISC, cookie: 6 }));
      await c.waitClosed();
    } finally {
      c.close();
    }
  });
});

describe("unix socket", () => {
  it("serves over a unix socket to nbdinfo and nbdcopy, and removes the socket on close", async () => {
    const path = join(dir, "nbd.sock");
    const server = new NbdServer({ exports: new Map([["raw", { device: raw }]]) });
    await server.listen({ path });
    try {
      expect(server.address()).toBe(path);
      const r = await run("nbdcopy", [`nbd+unix:///raw?socket=${path}`, "-"]);
      expect(r.code, r.stderr).toBe(0);
      const list = await run("nbdinfo", ["--size", `nbd+unix:///?socket=${path}`]);
      expect(list.stdout.trim()).toBe(String(SIZE));
    } finally {
      await server.close();
    }
    await expect(readFile(path)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
