/**
 * Export access control: the rules (checked against node:net's BlockList, an
 * independent CIDR matcher), the per-client catalog the session sees, and the
 * server refusing real clients by address. Clients connect from 127.0.0.1 and
 * 127.0.0.2 (both loopback: Linux routes all of 127/8 to lo), ::1, or a unix
 * socket; nothing leaves the machine.
 */
import { fc, test as fcTest } from "@fast-check/vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { BlockList } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessRules, DenyAs, addAllowFile, parseCidr } from "../../src/nbd/access.ts";
import { type AccessDeniedInfo, NbdServer } from "../../src/nbd/server.ts";
import { Session, type SessionEvent, State } from "../../src/nbd/session.ts";
import { MemDevice, pattern } from "./helpers/memdev.ts";
import { RawClient, run } from "./helpers/net.ts";
import { GREETING, OPT, type OptReply, REP, ReplyReader, clientFlags, goData, metaData, option } from "./helpers/proto.ts";

const ERR_POLICY = 0x80000002;
const ip = (address: string) => ({ kind: "ip" as const, address });
const UNIX = { kind: "unix" as const };

describe("rules", () => {
  it("restrict only the exports they name; * restricts every export", () => {
    const r = AccessRules.parse(["secret=10.0.0.0/8,192.168.1.7", "secret=::1", "lab=unix"]);
    expect(r.allows("secret", ip("10.200.3.4"))).toBe(true);
    expect(r.allows("secret", ip("11.0.0.1"))).toBe(false);
    expect(r.allows("secret", ip("192.168.1.7"))).toBe(true);
    expect(r.allows("secret", ip("192.168.1.8"))).toBe(false);
    expect(r.allows("secret", ip("::1"))).toBe(true); // rules for one export add up
    expect(r.allows("secret", UNIX)).toBe(false);
    expect(r.allows("lab", UNIX)).toBe(true);
    expect(r.allows("lab", ip("127.0.0.1"))).toBe(false);
    expect(r.allows("public", ip("203.0.113.9"))).toBe(true); // no rule names it
    expect(r.allows("public", UNIX)).toBe(true);
    expect(r.exportsNamed().sort()).toEqual(["lab", "secret"]);

    const all = AccessRules.parse(["*=127.0.0.0/8", "wide=0.0.0.0/0"]);
    expect(all.allows("anything", ip("127.9.9.9"))).toBe(true);
    expect(all.allows("anything", ip("10.0.0.1"))).toBe(false);
    expect(all.allows("wide", ip("10.0.0.1"))).toBe(true); // its own rule or the * rule
    expect(all.exportsNamed()).toEqual(["wide"]);
  });

  it("matches IPv4 clients seen through an IPv6 socket (::ffff:a.b.c.d) as IPv4, and ignores zone ids", () => {
    const r = AccessRules.parse(["d=127.0.0.0/8,fe80::/10"]);
    expect(r.allows("d", ip("::ffff:127.0.0.2"))).toBe(true);
    expect(r.allows("d", ip("::ffff:10.0.0.2"))).toBe(false);
    expect(r.allows("d", ip("fe80::1%lo"))).toBe(true);
    expect(r.allows("d", ip("not an address"))).toBe(false); // fails closed
  });

  it("rejects malformed rules and CIDRs with a hint", () => {
    for (const bad of ["d", "=1.2.3.4", "d=", "d=10.0.0.0/33", "d=1.2.3", "d=fe80::/129", "d=1.2.3.4/8/1", "d=010.0.0.1", "d=10.0.0.0/-1", "d=host.example"]) {
      expect(() => AccessRules.parse([bad]), bad).toThrow(/--allow: .* is not (EXPORT=CIDR|an IP address or CIDR)/);
    }
    expect(() => parseCidr("1.2.3.4/x", "f:3")).toThrow(/^f:3: "1.2.3.4\/x" is not an IP address or CIDR$/);
  });

  it("reads allow files: comments, blank lines, blank-separated lists; errors name file:line", () => {
    const r = addAllowFile(new AccessRules(), "# who may read what\n\nsecret = 10.0.0.0/8, 10.1.0.0/16\nlab 127.0.0.1 ::1  # loopback only\n", "allow.txt");
    expect(r.describe()).toEqual(["secret: 10.0.0.0/8, 10.1.0.0/16", "lab: 127.0.0.1, ::1"]);
    expect(() => addAllowFile(new AccessRules(), "ok=1.2.3.4\n\nbad=300.1.1.1\n", "a.txt")).toThrow(/^a\.txt:3: "300\.1\.1\.1"/);
  });

  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(":"));
  fcTest.prop([v4, fc.nat(32), v4], { numRuns: 500 })("IPv4 CIDR matching agrees with net.BlockList", (net, prefix, addr) => {
    const bl = new BlockList();
    bl.addSubnet(net, prefix, "ipv4");
    expect(AccessRules.parse([`d=${net}/${prefix}`]).allows("d", ip(addr))).toBe(bl.check(addr, "ipv4"));
  });
  fcTest.prop([v6, fc.nat(128), v6, fc.nat(128)], { numRuns: 500 })("IPv6 CIDR matching agrees with net.BlockList", (net, prefix, addr, keep) => {
    // Share a prefix of `keep` bits so that matches are not all misses.
    const n = BigInt(`0x${net.split(":").map((g) => g.padStart(4, "0")).join("")}`);
    const a = BigInt(`0x${addr.split(":").map((g) => g.padStart(4, "0")).join("")}`);
    const mask = ((1n << BigInt(keep)) - 1n) << BigInt(128 - keep);
    const mixed = ((n & mask) | (a & ~mask & ((1n << 128n) - 1n))).toString(16).padStart(32, "0").match(/.{4}/g)!.join(":");
    const bl = new BlockList();
    bl.addSubnet(net, prefix, "ipv6");
    expect(AccessRules.parse([`d=${net}/${prefix}`]).allows("d", ip(mixed))).toBe(bl.check(mixed, "ipv6"));
  });
});

// ------------------------------------------------------------ the session's view

const SIZE = 1 << 16;
function server(rules: string[], denyAs: DenyAs = DenyAs.POLICY): NbdServer {
  const exports = new Map([
    ["public", { device: new MemDevice(pattern(SIZE, 1)) }],
    ["secret", { device: new MemDevice(pattern(SIZE, 2)) }],
  ]);
  return new NbdServer({ exports, defaultExport: "secret", access: AccessRules.parse(rules), denyAs });
}

function talk(srv: NbdServer, client: ReturnType<typeof ip> | typeof UNIX, bytes: Buffer): { replies: OptReply[]; events: SessionEvent[]; session: Session } {
  const session = new Session(srv.catalogFor(client));
  session.push(Buffer.concat([clientFlags(3), bytes]));
  const events: SessionEvent[] = [];
  for (let ev = session.poll(); ev; ev = session.poll()) events.push(ev);
  const sent = Buffer.concat(events.flatMap((e) => (e.kind === "send" ? e.data : [])));
  expect(sent.subarray(0, 18)).toEqual(GREETING);
  const r = new ReplyReader();
  r.push(sent.subarray(18));
  return { replies: r.all() as OptReply[], events, session };
}

describe("a refused client's session", () => {
  const srv = server(["secret=127.0.0.2"]);
  const listed = (c: Parameters<typeof talk>[1]) => talk(srv, c, option(OPT.LIST)).replies.filter((r) => r.type === REP.SERVER).map((r) => r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString());

  it("LIST leaves out exports the client may not open", () => {
    expect(listed(ip("127.0.0.1"))).toEqual(["public"]);
    expect(listed(ip("127.0.0.2"))).toEqual(["public", "secret"]);
  });

  it("INFO, GO and SET_META_CONTEXT get NBD_REP_ERR_POLICY and a refused event; the default export too", () => {
    const bytes = Buffer.concat([option(OPT.INFO, goData("secret")), option(OPT.GO, goData("")), option(OPT.STRUCTURED_REPLY), option(OPT.SET_META, metaData("secret", ["base:allocation"])), option(OPT.GO, goData("public"))]);
    const t = talk(srv, ip("127.0.0.1"), bytes);
    expect(t.replies.map((r) => [r.option, r.type])).toEqual([
      [OPT.INFO, ERR_POLICY], [OPT.GO, ERR_POLICY], [OPT.STRUCTURED_REPLY, REP.ACK], [OPT.SET_META, ERR_POLICY],
      [OPT.GO, REP.INFO], [OPT.GO, REP.INFO], [OPT.GO, REP.ACK],
    ]);
    expect(t.replies[0]!.data.toString()).toBe('access to export "secret" is not allowed from this client');
    expect(t.events.filter((e) => e.kind === "refused")).toEqual([
      { kind: "refused", option: OPT.INFO, export: "secret", reply: ERR_POLICY },
      { kind: "refused", option: OPT.GO, export: "secret", reply: ERR_POLICY },
      { kind: "refused", option: OPT.SET_META, export: "secret", reply: ERR_POLICY },
    ]);
    expect(t.session.state).toBe(State.TRANSMISSION);
    expect(t.session.exportInfo?.name).toBe("public");
  });

  it("EXPORT_NAME of a refused export is a hard disconnect", () => {
    const t = talk(srv, ip("127.0.0.1"), option(OPT.EXPORT_NAME, Buffer.from("secret")));
    expect(t.replies).toEqual([]);
    expect(t.events.map((e) => e.kind)).toEqual(["send", "refused", "end"]);
    expect(t.events.at(-1)).toMatchObject({ hard: true, reason: expect.stringMatching(/export "secret": no access rule admits 127\.0\.0\.1/) });
    expect(talk(srv, ip("127.0.0.2"), option(OPT.EXPORT_NAME, Buffer.from("secret"))).session.state).toBe(State.TRANSMISSION);
  });

  it("with deny-as unknown the reply is byte for byte the reply to a name that does not exist", () => {
    const hiding = server(["secret=127.0.0.2"], DenyAs.UNKNOWN);
    const refused = talk(hiding, ip("127.0.0.1"), option(OPT.INFO, goData("secret")));
    const absent = talk(hiding, ip("127.0.0.1"), option(OPT.INFO, goData("no-such")));
    expect(refused.replies[0]!.type).toBe(REP.ERR_UNKNOWN);
    expect(refused.replies[0]!.data.toString().replace('"secret"', '"no-such"')).toBe(absent.replies[0]!.data.toString());
    expect(refused.replies[0]!.data.toString()).not.toMatch(/"secret".*"secret"/); // the list of exports leaves it out
    expect(refused.events.filter((e) => e.kind === "refused")).toHaveLength(1); // but the log knows
  });

  it("a unix-socket client is admitted only by the word unix", () => {
    expect(listed(UNIX)).toEqual(["public"]);
    expect(talk(server(["secret=unix"]), UNIX, option(OPT.GO, goData("secret"))).session.state).toBe(State.TRANSMISSION);
  });
});

// ------------------------------------------------------------ over sockets

describe("the server refuses by client address (real sockets)", () => {
  let srv: NbdServer;
  let port: number;
  let dir: string;
  const denied: AccessDeniedInfo[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "pfs-access-"));
    srv = server(["secret=127.0.0.2/32,::1"]);
    srv.on("access-denied", (d: AccessDeniedInfo) => denied.push(d));
    await srv.listen({ host: "127.0.0.1", port: 0 });
    port = (srv.address() as { port: number }).port;
  });
  afterAll(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("nbdinfo from 127.0.0.1 lists only the public export and is refused the secret one (policy)", async () => {
    const list = await run("nbdinfo", ["--list", "--json", `nbd://127.0.0.1:${port}`]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).exports.map((e: { "export-name": string }) => e["export-name"])).toEqual(["public"]);
    const r = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${port}/secret`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/server policy prevents NBD_OPT_GO/);
    expect(denied.at(-1)).toMatchObject({ export: "secret", option: "NBD_OPT_GO", answer: "NBD_REP_ERR_POLICY", client: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it("a client bound to 127.0.0.2 may open it and reads its bytes", async () => {
    const c = await RawClient.connect(port, { localAddress: "127.0.0.2" });
    try {
      await c.handshake();
      c.send(option(OPT.GO, goData("secret")));
      const types: number[] = [];
      for (let r = (await c.reply()) as OptReply; ; r = (await c.reply()) as OptReply) {
        types.push(r.type);
        if (r.type === REP.ACK || r.type & 0x80000000) break;
      }
      expect(types.at(-1)).toBe(REP.ACK);
      c.reader.phase = "transmission";
      c.reader.expectRead(1, 4096);
      c.send(Buffer.from("2560951300000000" + "0000000000000001" + "0000000000001000" + "00001000", "hex")); // READ 4096 @4096
      const reply = (await c.reply()) as { error: number; data: Buffer };
      expect(reply.error).toBe(0);
      expect(reply.data).toEqual(pattern(SIZE, 2).subarray(4096, 8192));
    } finally {
      c.close();
    }
  });

  it("the same client from 127.0.0.1 is refused and the refusal is logged with its address", async () => {
    const before = denied.length;
    const c = await RawClient.connect(port, { localAddress: "127.0.0.1" });
    try {
      await c.handshake();
      c.send(option(OPT.INFO, goData("secret")));
      expect(((await c.reply()) as OptReply).type).toBe(ERR_POLICY);
      c.send(option(OPT.EXPORT_NAME, Buffer.from("secret")));
      await c.waitClosed();
    } finally {
      c.close();
    }
    expect(denied.slice(before).map((d) => [d.option, d.answer])).toEqual([["NBD_OPT_INFO", "NBD_REP_ERR_POLICY"], ["NBD_OPT_EXPORT_NAME", "disconnect"]]);
  });

  it("IPv6 loopback and unix-socket clients follow their own rules", async () => {
    const v6 = server(["secret=::1"]);
    await v6.listen({ host: "::1", port: 0 });
    const sock = join(dir, "nbd.sock");
    const ux = server(["secret=unix"]);
    await ux.listen({ path: sock });
    try {
      const p6 = (v6.address() as { port: number }).port;
      const a = await run("nbdinfo", ["--size", `nbd://[::1]:${p6}/secret`]);
      expect(a.stdout.trim(), a.stderr).toBe(String(SIZE));
      const b = await run("nbdinfo", ["--size", `nbd+unix:///secret?socket=${sock}`]);
      expect(b.stdout.trim(), b.stderr).toBe(String(SIZE));
      const c = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${port}/secret`]);
      expect(c.code).not.toBe(0);
    } finally {
      await v6.close();
      await ux.close();
    }
  });

  it("deny-as unknown: nbdinfo sees the secret export as absent (ENOENT)", async () => {
    const hiding = server(["secret=127.0.0.2"], DenyAs.UNKNOWN);
    await hiding.listen({ host: "127.0.0.1", port: 0 });
    try {
      const p = (hiding.address() as { port: number }).port;
      const r = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${p}/secret`]);
      expect(r.stderr).toMatch(/server has no export named 'secret': No such file or directory/);
      const absent = await run("nbdinfo", ["--size", `nbd://127.0.0.1:${p}/nothing`]);
      expect(absent.stderr.replace(/nothing/g, "secret")).toBe(r.stderr);
    } finally {
      await hiding.close();
    }
  });
});
