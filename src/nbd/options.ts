/**
 * Option haggling (proto.md "Option types", "Option reply types"): one pure
 * handler per fixed-newstyle option. A handler parses the option data with
 * bounds checks, updates the negotiated state and returns the whole list of
 * replies. NBD_OPT_EXPORT_NAME is not here: it has no reply packet and is
 * handled by the session itself.
 */
import { nameOf } from "../common/names.ts";
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  MAX_PAYLOAD,
  MAX_STRING,
  MIN_BLOCK_SIZE,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_TX_FLAG,
  OPTION_REPLY,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeLengthPrefixed,
  encodeMetaContext,
  encodeOptionReply,
} from "./wire.ts";

/** What the session knows about one export; the server maps names to devices. */
export interface ExportInfo {
  /** Canonical name (NBD_INFO_NAME, NBD_REP_SERVER). */
  readonly name: string;
  readonly size: number;
  /** Preferred block size; advertised in NBD_INFO_BLOCK_SIZE when a power of 2 ≥ 512. */
  readonly blockSize: number;
  readonly description?: string;
}

/** Why a client may not open an export, and the reply that tells it (access control). */
export interface Refusal {
  /** NBD_REP_ERR_POLICY, or NBD_REP_ERR_UNKNOWN to hide that the export exists. */
  reply: typeof NBD_REP.ERR_POLICY | typeof NBD_REP.ERR_UNKNOWN;
  /** For the server's log; never sent to the client. */
  reason: string;
}

export interface ExportCatalog {
  /** Export names for NBD_OPT_LIST, in listing order (only those this client may open). */
  names(): readonly string[];
  /** Look a name up; "" is the default export. */
  lookup(name: string): ExportInfo | undefined;
  /** Why this client may not open `info`; undefined (or no method) when it may. */
  refusal?(info: ExportInfo): Refusal | undefined;
}

/** State that options change and transmission depends on. */
export interface Negotiated {
  structured: boolean;
  extended: boolean;
  /** Canonical export name that SET_META_CONTEXT selected base:allocation for. */
  metaExport: string | undefined;
  shuttingDown: boolean;
}

export interface OptionOutcome {
  replies: Buffer[];
  /** NBD_OPT_GO succeeded: enter transmission with this export. */
  go?: ExportInfo;
  /** NBD_OPT_ABORT: soft disconnect after the ACK. */
  abort?: boolean;
  /** The access policy refused this export (the reply says so). */
  refused?: { export: string; reply: number };
}

/** "NBD_REP_INFO, NBD_REP_ACK" or "NBD_REP_ERR_UNKNOWN (message)": replies for a log line. */
export function describeReplies(replies: readonly Buffer[]): string {
  return replies
    .map((b) => {
      const type = b.readUInt32BE(OPTION_REPLY.at.reply_type);
      const name = `NBD_REP_${nameOf(NBD_REP, type)}`;
      return type & 0x80000000 ? `${name} (${b.subarray(OPTION_REPLY.size).toString("utf8")})` : name;
    })
    .join(", ");
}

/** Transmission flags for a read-only export (proto.md "Transmission flags"). */
export function transmissionFlags(neg: Negotiated): number {
  const F = NBD_TX_FLAG;
  // SEND_DF MUST be clear unless structured replies or extended headers were negotiated.
  const df = neg.structured || neg.extended ? F.SEND_DF : 0;
  return F.HAS_FLAGS | F.READ_ONLY | F.SEND_FLUSH | F.SEND_CACHE | F.CAN_MULTI_CONN | df;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Bounded reader over option data; `undefined` on any overrun or bad UTF-8. */
class OptReader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  get left(): number {
    return this.b.length - this.pos;
  }
  u16(): number | undefined {
    if (this.left < 2) return undefined;
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number | undefined {
    if (this.left < 4) return undefined;
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  str(n: number): string | undefined {
    if (n > this.left || n > MAX_STRING) return undefined;
    try {
      const s = utf8.decode(this.b.subarray(this.pos, this.pos + n));
      this.pos += n;
      return s.includes("\0") ? undefined : s;
    } catch {
      return undefined;
    }
  }
}

function reply(option: number, type: number, data?: Uint8Array): Buffer {
  return encodeOptionReply(option, type, data);
}
/** An error reply carrying a message (the session logs it with the connection id). */
function err(option: number, type: number, message: string): OptionOutcome {
  return { replies: [reply(option, type, Buffer.from(message, "utf8"))] };
}
function unknownExport(option: number, name: string, catalog: ExportCatalog): OptionOutcome {
  return err(option, NBD_REP.ERR_UNKNOWN, `export "${name}" not found; this server has: ${catalog.names().map((n) => `"${n}"`).join(", ")}`);
}
/**
 * Access control: the refused export's reply. As ERR_UNKNOWN it is the very
 * reply an unknown name gets (catalog.names() already leaves the export out),
 * so the client cannot tell the two apart.
 */
function refuse(option: number, name: string, info: ExportInfo, catalog: ExportCatalog): OptionOutcome | undefined {
  const no = catalog.refusal?.(info);
  if (!no) return undefined;
  const out = no.reply === NBD_REP.ERR_UNKNOWN ? unknownExport(option, name, catalog) : err(option, NBD_REP.ERR_POLICY, `access to export "${name}" is not allowed from this client`);
  return { ...out, refused: { export: info.name, reply: no.reply } };
}

export function handleOption(neg: Negotiated, catalog: ExportCatalog, option: number, data: Buffer): OptionOutcome {
  // During shutdown everything but ABORT gets ERR_SHUTDOWN (proto.md "Termination ... during option haggling").
  if (neg.shuttingDown && option !== NBD_OPT.ABORT) return err(option, NBD_REP.ERR_SHUTDOWN, "server is shutting down");
  switch (option) {
    case NBD_OPT.ABORT:
      // Data SHOULD be ignored; the reply is a bare ACK.
      return { replies: [reply(option, NBD_REP.ACK)], abort: true };
    case NBD_OPT.LIST:
      return optList(catalog, data);
    case NBD_OPT.INFO:
    case NBD_OPT.GO:
      return optInfoGo(neg, catalog, option, data);
    case NBD_OPT.STRUCTURED_REPLY:
      if (data.length !== 0) return err(option, NBD_REP.ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
      if (neg.extended) return err(option, NBD_REP.ERR_EXT_HEADER_REQD, "extended headers already negotiated");
      neg.structured = true;
      return { replies: [reply(option, NBD_REP.ACK)] };
    case NBD_OPT.EXTENDED_HEADERS:
      if (data.length !== 0) return err(option, NBD_REP.ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS takes no data");
      neg.extended = true;
      return { replies: [reply(option, NBD_REP.ACK)] };
    case NBD_OPT.LIST_META_CONTEXT:
    case NBD_OPT.SET_META_CONTEXT:
      return optMetaContext(neg, catalog, option, data);
    default:
      return err(option, NBD_REP.ERR_UNSUP, `option ${nameOf(NBD_OPT, option)} is not supported`);
  }
}

function optList(catalog: ExportCatalog, data: Buffer): OptionOutcome {
  const option = NBD_OPT.LIST;
  if (data.length !== 0) return err(option, NBD_REP.ERR_INVALID, "NBD_OPT_LIST takes no data");
  const replies: Buffer[] = [];
  for (const name of catalog.names()) {
    const desc = catalog.lookup(name)?.description ?? "";
    replies.push(reply(option, NBD_REP.SERVER, encodeLengthPrefixed(name, desc)));
  }
  replies.push(reply(option, NBD_REP.ACK));
  return { replies };
}

/*
 * NBD_OPT_INFO / NBD_OPT_GO data:
 *   u32 name length (≤ option length - 6) | name | u16 n | n × u16 info request
 */
function optInfoGo(neg: Negotiated, catalog: ExportCatalog, option: number, data: Buffer): OptionOutcome {
  const r = new OptReader(data);
  const nameLen = r.u32();
  const name = nameLen === undefined ? undefined : r.str(nameLen);
  const n = name === undefined ? undefined : r.u16();
  if (n === undefined || r.left !== 2 * n) {
    return err(option, NBD_REP.ERR_INVALID, `${nameOf(NBD_OPT, option)}: malformed data (${data.length} bytes)`);
  }
  const requested = new Set<number>();
  for (let i = 0; i < n; i++) requested.add(r.u16()!);
  const info = catalog.lookup(name!);
  if (!info) return unknownExport(option, name!, catalog);
  const refused = refuse(option, name!, info, catalog);
  if (refused) return refused;

  const replies = [reply(option, NBD_REP.INFO, encodeInfoExport(info.size, transmissionFlags(neg)))];
  if (requested.has(NBD_INFO.NAME)) replies.push(reply(option, NBD_REP.INFO, encodeInfoString(NBD_INFO.NAME, info.name)));
  if (requested.has(NBD_INFO.DESCRIPTION) && info.description) {
    replies.push(reply(option, NBD_REP.INFO, encodeInfoString(NBD_INFO.DESCRIPTION, info.description)));
  }
  // Sent even when not requested (allowed: clients ignore what they did not ask for),
  // so every client learns the 32 MiB cap, like qemu-nbd does.
  replies.push(reply(option, NBD_REP.INFO, encodeInfoBlockSize(MIN_BLOCK_SIZE, preferredBlockSize(info), MAX_PAYLOAD)));
  replies.push(reply(option, NBD_REP.ACK));
  return option === NBD_OPT.GO ? { replies, go: info } : { replies };
}

/** Preferred block size MUST be a power of 2 ≥ max(minimum, 512) (proto.md "Size constraints"). */
export function preferredBlockSize(info: ExportInfo): number {
  const b = info.blockSize;
  const pow2 = Number.isInteger(b) && b >= 512 && b <= MAX_PAYLOAD && (b & (b - 1)) === 0;
  return pow2 ? b : 4096;
}

/*
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data:
 *   u32 name length | name | u32 query count | count × (u32 length | query)
 */
function optMetaContext(neg: Negotiated, catalog: ExportCatalog, option: number, data: Buffer): OptionOutcome {
  const set = option === NBD_OPT.SET_META_CONTEXT;
  // SET replaces the previous selection, even when it fails.
  if (set) neg.metaExport = undefined;
  if (!neg.structured && !neg.extended) {
    return err(option, NBD_REP.ERR_INVALID, `${nameOf(NBD_OPT, option)} needs structured replies or extended headers first`);
  }
  const r = new OptReader(data);
  const nameLen = r.u32();
  const name = nameLen === undefined ? undefined : r.str(nameLen);
  let count = name === undefined ? undefined : r.u32();
  const queries: string[] = [];
  while (count !== undefined && count > 0) {
    const qlen = r.u32();
    const q = qlen === undefined ? undefined : r.str(qlen);
    if (q === undefined) break;
    queries.push(q);
    count--;
  }
  if (count !== 0 || r.left !== 0) {
    return err(option, NBD_REP.ERR_INVALID, `${nameOf(NBD_OPT, option)}: malformed data (${data.length} bytes)`);
  }
  const info = catalog.lookup(name!);
  if (!info) return unknownExport(option, name!, catalog);
  const refused = refuse(option, name!, info, catalog);
  if (refused) return refused;

  // base:allocation is our only context. LIST: no queries means "all", and
  // "base:" is a wildcard; SET: only the exact name selects it. Unknown
  // namespaces and leaves are ignored, not errors.
  const match = set
    ? queries.includes(BASE_ALLOCATION)
    : queries.length === 0 || queries.some((q) => q === BASE_ALLOCATION || q === "base:");
  const replies: Buffer[] = [];
  if (match) replies.push(reply(option, NBD_REP.META_CONTEXT, encodeMetaContext(set ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION)));
  replies.push(reply(option, NBD_REP.ACK));
  if (set && match) neg.metaExport = info.name;
  return { replies };
}
