/**
 * Transmission-phase request checks (proto.md "Request types", "Command
 * flags", "Error values"): one pure function from a decoded request header
 * and the negotiated state to a verdict. Recoverable faults are answered
 * here (NBD_EINVAL, NBD_EPERM, NBD_ESHUTDOWN) and the session goes on;
 * requests that need the export's device come back as an NbdRequest.
 */
import { log } from "../common/debug.ts";
import { PfsError } from "../common/errors.ts";
import { nameOf } from "../common/names.ts";
import type { Negotiated } from "./options.ts";
import type { Replies } from "./replies.ts";
import { MAX_PAYLOAD, NBD_CMD, NBD_CMD_FLAG, NBD_E, type RequestHeader } from "./wire.ts";

/** A validated request that needs the export's BlockDevice. */
export interface NbdRequest {
  type: typeof NBD_CMD.READ | typeof NBD_CMD.CACHE | typeof NBD_CMD.BLOCK_STATUS;
  flags: number;
  cookie: bigint;
  /** Checked: 0 ≤ offset, offset + length ≤ export size, length ≥ 1. */
  offset: number;
  length: number;
  /** The request's offset field as sent, echoed in extended reply headers. */
  rawOffset: bigint;
}

/** What checkRequest needs to know about the session. */
export interface RequestContext {
  neg: Negotiated;
  /** SET_META_CONTEXT selected base:allocation for this export. */
  metaActive: boolean;
  exportSize: number;
  replies: Replies;
  /** Log line prefix, e.g. "conn#3 ". */
  tag: string;
}

/** DISC ends the session; anything else is answered ("send") or goes to the device ("request"). */
export type RequestVerdict = { kind: "disc" } | { kind: "send"; data: Buffer[] } | { kind: "request"; req: NbdRequest };

/** Check one request against the negotiated state and the export; reply or pass it on. */
export function checkRequest(h: RequestHeader, hasPayload: boolean, c: RequestContext): RequestVerdict {
  const R = c.replies;
  const name = nameOf(NBD_CMD, h.type);
  const fail = (errno: number, why: string): RequestVerdict => {
    log.nbd("%sNBD_CMD_%s cookie %s: %s -> NBD_%s", c.tag, name, h.cookie, why, nameOf(NBD_E, errno));
    return { kind: "send", data: [R.error(h.cookie, h.offset, errno, `${name}: ${why}`)] };
  };
  if (h.type === NBD_CMD.DISC) return { kind: "disc" };
  if (c.neg.shuttingDown) return fail(NBD_E.ESHUTDOWN, "server is shutting down");

  const allowed = allowedFlags(h.type, c.neg);
  if (allowed < 0) return fail(NBD_E.EINVAL, `unknown command ${h.type}`);
  // In extended mode PAYLOAD_LEN is how a payload is announced; we implement no
  // payload form besides WRITE, so on any other command it is an invalid flag.
  const writePayload = h.type === NBD_CMD.WRITE && c.neg.extended ? NBD_CMD_FLAG.PAYLOAD_LEN : 0;
  const bad = h.flags & ~allowed & ~writePayload;
  if (bad !== 0) return fail(NBD_E.EINVAL, `flags 0x${bad.toString(16)} not valid here`);

  switch (h.type) {
    case NBD_CMD.WRITE:
      if (c.neg.extended && !hasPayload) return fail(NBD_E.EINVAL, "extended WRITE without NBD_CMD_FLAG_PAYLOAD_LEN");
      return fail(NBD_E.EPERM, "the export is read-only");
    case NBD_CMD.TRIM:
    case NBD_CMD.WRITE_ZEROES:
      return fail(NBD_E.EPERM, "the export is read-only");
    case NBD_CMD.FLUSH:
      // Nothing is ever written, so there is nothing to flush; offset and length MUST be 0.
      if (h.offset !== 0n || h.length !== 0n) return fail(NBD_E.EINVAL, "offset and length must be zero");
      return { kind: "send", data: [R.ok(h.cookie, h.offset)] };
    case NBD_CMD.BLOCK_STATUS:
      if (!c.metaActive) return fail(NBD_E.EINVAL, "no metadata context was selected with NBD_OPT_SET_META_CONTEXT");
      return ranged(h, c.exportSize, fail);
    case NBD_CMD.READ:
    case NBD_CMD.CACHE:
      return ranged(h, c.exportSize, fail);
    default:
      throw PfsError.internal(`allowedFlags accepted command ${h.type}`);
  }
}

/** READ, CACHE, BLOCK_STATUS: nonzero length inside the export, reads ≤ 32 MiB. */
function ranged(h: RequestHeader, exportSize: number, fail: (errno: number, why: string) => RequestVerdict): RequestVerdict {
  const size = BigInt(exportSize);
  if (h.length === 0n) return fail(NBD_E.EINVAL, "zero length");
  if (h.offset + h.length > size) {
    return fail(NBD_E.EINVAL, `offset ${h.offset} + length ${h.length} is beyond the end of the export (${size} bytes)`);
  }
  // Reads are answered from a buffer of `length` bytes: cap them at the advertised maximum.
  if (h.type === NBD_CMD.READ && h.length > BigInt(MAX_PAYLOAD)) {
    return fail(NBD_E.EINVAL, `length ${h.length} exceeds the maximum payload ${MAX_PAYLOAD}`);
  }
  const type = h.type as NbdRequest["type"];
  const req: NbdRequest = { type, flags: h.flags, cookie: h.cookie, offset: Number(h.offset), length: Number(h.length), rawOffset: h.offset };
  return { kind: "request", req };
}

/** Command flags valid per command (proto.md "Command flags"); -1 for unknown commands. */
function allowedFlags(type: number, neg: Negotiated): number {
  const F = NBD_CMD_FLAG;
  switch (type) {
    case NBD_CMD.READ:
      return neg.structured || neg.extended ? F.DF : 0;
    case NBD_CMD.BLOCK_STATUS:
      return F.REQ_ONE;
    case NBD_CMD.WRITE_ZEROES:
      return F.NO_HOLE;
    case NBD_CMD.WRITE:
    case NBD_CMD.TRIM:
    case NBD_CMD.FLUSH:
    case NBD_CMD.CACHE:
      return 0;
    default:
      return -1;
  }
}
