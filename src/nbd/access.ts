/**
 * Export access control: which client addresses may open which export.
 *
 * Rules have the form `EXPORT=CIDR[,CIDR...]` (`--allow`, or one per line of
 * an allow file). An export named by at least one rule is open only to
 * clients whose address lies in one of its CIDRs; `*=CIDR,...` applies to
 * every export (so `*=127.0.0.0/8` alone makes the whole server loopback-only);
 * an export no rule names, and no `*` rule exists, is open to every client.
 *
 * Addresses: IPv4 and IPv6 CIDRs (`10.0.0.0/8`, `fd00::/8`, a bare address
 * means /32 or /128). An IPv4 client seen through a dual-stack IPv6 socket
 * (`::ffff:10.1.2.3`) is matched as the IPv4 address it is. A unix-socket
 * client has no address: only the word `unix` in a rule admits it (the
 * socket file's permissions are the first gate; a restricted export stays
 * restricted unless a rule says otherwise).
 *
 * Pure: no sockets; the server asks `allows(export, client)` once per option.
 */
import { isIPv4, isIPv6 } from "node:net";
import { PfsError } from "../common/errors.ts";

/** Who is asking: a TCP peer's address, or a unix-socket peer. */
export type ClientAddress = { kind: "ip"; address: string } | { kind: "unix" };

/** How a refused client is answered: NBD_REP_ERR_POLICY, or ERR_UNKNOWN to hide the export. */
export const DenyAs = { POLICY: "policy", UNKNOWN: "unknown" } as const;
export type DenyAs = (typeof DenyAs)[keyof typeof DenyAs];

/** One parsed CIDR: the network as a bigint, and its family and prefix length. */
interface Cidr {
  family: 4 | 6;
  net: bigint;
  prefix: number;
  text: string;
}

/** The name a rule uses for "every export". */
export const ALL_EXPORTS = "*";
export const UNIX_CLIENTS = "unix";

function ipToBigint(address: string): { family: 4 | 6; value: bigint } | undefined {
  if (isIPv4(address)) {
    const v = address.split(".").reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
    return { family: 4, value: v };
  }
  if (!isIPv6(address)) return undefined;
  let a = address.replace(/%.*$/, ""); // zone id (fe80::1%eth0)
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (m) {
    const v4 = ipToBigint(m[2]!)!.value;
    a = `${m[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = a.includes("::") ? a.split("::") : [a, undefined];
  const hs = head ? head.split(":") : [];
  const ts = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts];
  if (groups.length !== 8) return undefined;
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** "::ffff:a.b.c.d" (IPv4-mapped IPv6) → the IPv4 address; anything else unchanged. */
function unmap(ip: { family: 4 | 6; value: bigint }): { family: 4 | 6; value: bigint } {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn) return { family: 4, value: ip.value & 0xffffffffn };
  return ip;
}

export function parseCidr(text: string, where: string): Cidr {
  const [addr, len, extra] = text.split("/");
  const ip = addr === undefined || extra !== undefined ? undefined : ipToBigint(addr);
  const bits = ip?.family === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!ip || !(prefix >= 0 && prefix <= bits)) {
    throw PfsError.usage(`${where}: "${text}" is not an IP address or CIDR`, "write e.g. 192.168.1.0/24, 10.1.2.3, fd00::/8, ::1, or the word unix");
  }
  const mask = ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { family: ip.family, net: ip.value & mask, prefix, text };
}

function contains(c: Cidr, ip: { family: 4 | 6; value: bigint }): boolean {
  if (c.family !== ip.family) return false;
  const bits = c.family === 4 ? 32 : 128;
  const shift = BigInt(bits - c.prefix);
  return ip.value >> shift === c.net >> shift;
}

interface RuleSet {
  cidrs: Cidr[];
  unix: boolean;
}

export class AccessRules {
  private readonly rules = new Map<string, RuleSet>();

  /**
   * Parse `EXPORT=CIDR[,CIDR...]` rules; `where(i)` names rule i in errors
   * (e.g. "--allow" or "allow.txt:3").
   */
  static parse(rules: readonly string[], where: (i: number) => string = () => "--allow"): AccessRules {
    const out = new AccessRules();
    rules.forEach((rule, i) => out.add(rule, where(i)));
    return out;
  }

  /** Add one rule; rules for the same export add up. */
  add(rule: string, where: string): this {
    const eq = rule.lastIndexOf("=");
    const name = rule.slice(0, eq).trim();
    const list = rule.slice(eq + 1).split(/[,\s]+/).filter((s) => s !== "");
    if (eq <= 0 || name === "" || list.length === 0) {
      throw PfsError.usage(`${where}: "${rule}" is not EXPORT=CIDR[,CIDR...]`, "e.g. --allow base=127.0.0.1/32,10.0.0.0/8, or *=192.168.0.0/16 for every export");
    }
    const set = this.rules.get(name) ?? { cidrs: [], unix: false };
    for (const item of list) {
      if (item === UNIX_CLIENTS) set.unix = true;
      else set.cidrs.push(parseCidr(item, where));
    }
    this.rules.set(name, set);
    return this;
  }

  /** Export names the rules mention, except `*`. */
  exportsNamed(): string[] {
    return [...this.rules.keys()].filter((n) => n !== ALL_EXPORTS);
  }

  get empty(): boolean {
    return this.rules.size === 0;
  }

  /** May `client` open export `name` (its canonical name)? */
  allows(name: string, client: ClientAddress): boolean {
    const sets = [this.rules.get(name), this.rules.get(ALL_EXPORTS)].filter((s): s is RuleSet => s !== undefined);
    if (sets.length === 0) return true;
    if (client.kind === "unix") return sets.some((s) => s.unix);
    const parsed = ipToBigint(client.address);
    if (!parsed) return false; // an address we cannot read is no address we allowed
    const ip = unmap(parsed);
    return sets.some((s) => s.cidrs.some((c) => contains(c, ip)));
  }

  /** One line per export for logs: `base: 127.0.0.1/32, unix`. */
  describe(): string[] {
    return [...this.rules].map(([n, s]) => `${n}: ${[...s.cidrs.map((c) => c.text), ...(s.unix ? [UNIX_CLIENTS] : [])].join(", ")}`);
  }
}

/**
 * Add the rules of an allow file: one rule per line (`EXPORT=CIDR[,CIDR...]`,
 * or `EXPORT CIDR ...` separated by blanks); `#` starts a comment; blank
 * lines are skipped. Errors name the file and line.
 */
export function addAllowFile(rules: AccessRules, text: string, file: string): AccessRules {
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    rules.add(line.includes("=") ? line : line.replace(/^(\S+)\s+/, "$1="), `${file}:${i + 1}`);
  });
  return rules;
}
