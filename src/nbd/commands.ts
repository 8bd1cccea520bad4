/**
 * Executing validated requests against a BlockDevice and building the whole
 * reply (proto.md "Request types"). No sockets here: the result is the list
 * of buffers the server writes as one unit, so replies are never interleaved.
 *
 * READ with simple replies reads the whole range before the header is built:
 * an error must be reported in the header, since a zero-error header followed
 * by a failure forces a hard disconnect (proto.md "Simple replies").
 */
import type { BlockDevice, Extent } from "../common/blockdev.ts";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { log } from "../common/debug.ts";
import type { BufferPool } from "./bufpool.ts";
import { ReplyMode, type Replies, type StatusExtent } from "./replies.ts";
import type { NbdRequest } from "./requests.ts";
import { BASE_ALLOCATION_ID, NBD_CMD, NBD_CMD_FLAG, NBD_E, NBD_STATE } from "./wire.ts";

export interface CommandResult {
  /** The whole reply, in order. */
  data: Uint8Array[];
  /** Export bytes delivered (READ payload and holes). */
  bytes: number;
  /** The first failure, for the server's log; the reply already reports it. */
  error?: { errno: number; cause: unknown };
  /** Pool buffers inside `data`: release them once the socket has taken the bytes. */
  owned?: Uint8Array[];
}

/** Most descriptors in one BLOCK_STATUS chunk (the spec's ceiling is 2^20). */
export const MAX_STATUS_EXTENTS = 1 << 16;
/** A read split into more pieces than this is sent as one data chunk instead. */
const MAX_READ_PIECES = 1024;

/** The one place a failure becomes an NBD errno (STYLE.md §8, §10; proto.md "Error values"). */
export function toNbdError(e: unknown): number {
  if (!(e instanceof PfsError)) return NBD_E.EIO;
  switch (e.code) {
    case ErrorCode.USAGE:
      return NBD_E.EINVAL;
    case ErrorCode.EXISTS:
      return NBD_E.EPERM;
    case ErrorCode.DIGEST:
    case ErrorCode.IO:
    case ErrorCode.FORMAT:
    case ErrorCode.NOT_FOUND:
    case ErrorCode.UNSUPPORTED:
    case ErrorCode.LIMIT:
    case ErrorCode.PROTOCOL:
    case ErrorCode.INTERNAL:
    default:
      return NBD_E.EIO;
  }
}

function messageOf(e: unknown): string {
  return e instanceof PfsError ? e.message : "internal server error";
}

/**
 * Run one request. With a pool, devices that implement readInto() fill pooled
 * buffers, listed in `owned` for the caller to release after writing.
 */
export async function execute(req: NbdRequest, dev: BlockDevice, replies: Replies, pool?: BufferPool): Promise<CommandResult> {
  switch (req.type) {
    case NBD_CMD.READ: {
      const owned: Uint8Array[] = [];
      const res = replies.mode === ReplyMode.SIMPLE ? await readSimple(req, dev, replies, pool, owned) : await readStructured(req, dev, replies, pool, owned);
      if (owned.length > 0) res.owned = owned;
      return res;
    }
    case NBD_CMD.CACHE:
      return cache(req, dev, replies);
    case NBD_CMD.BLOCK_STATUS:
      return blockStatus(req, dev, replies);
  }
}

/**
 * Exactly `length` bytes at `offset`: into a pooled buffer (added to `owned`)
 * when the device has readInto, else from device.read, checked for length.
 */
async function readExactly(dev: BlockDevice, offset: number, length: number, pool: BufferPool | undefined, owned: Uint8Array[]): Promise<Uint8Array> {
  if (dev.readInto && pool) {
    const buf = pool.acquire(length);
    try {
      await dev.readInto(offset, buf);
    } catch (e) {
      pool.release(buf);
      throw e;
    }
    owned.push(buf);
    return buf;
  }
  const data = await dev.read(offset, length);
  if (data.length !== length) throw PfsError.internal(`BlockDevice.read(${offset}, ${length}) returned ${data.length} bytes`);
  return data;
}

/** A failure for the result (the server logs it, with the connection id). */
function failed(_req: NbdRequest, e: unknown): CommandResult["error"] {
  return { errno: toNbdError(e), cause: e };
}

async function readSimple(req: NbdRequest, dev: BlockDevice, R: Replies, pool: BufferPool | undefined, owned: Uint8Array[]): Promise<CommandResult> {
  try {
    const data = await readExactly(dev, req.offset, req.length, pool, owned);
    return { data: [R.simple(req.cookie, 0), data], bytes: req.length };
  } catch (e) {
    const error = failed(req, e)!;
    return { data: [R.simple(req.cookie, error.errno)], bytes: 0, error };
  }
}

/**
 * Structured READ: OFFSET_HOLE for zero extents, OFFSET_DATA for the rest,
 * ERROR_OFFSET (at the first bad byte when the device knows it) for a piece
 * that fails; other pieces are still delivered. The last chunk carries DONE:
 * every piece has been read before the first byte is written, so no error
 * can surface after it. With DF there is exactly one content chunk.
 */
async function readStructured(req: NbdRequest, dev: BlockDevice, R: Replies, pool: BufferPool | undefined, owned: Uint8Array[]): Promise<CommandResult> {
  const end = req.offset + req.length;
  let pieces: Extent[];
  try {
    pieces = dev.allocation ? walkAllocation(dev, req.offset, req.length, MAX_READ_PIECES + 1) : [];
  } catch (e) {
    pieces = []; // the map is only an optimisation for reads: fall back to reading it all
    log.nbd("allocation(%d, %d) failed, reading as data: %s", req.offset, req.length, messageOf(e));
  }
  const covered = pieces.length > 0 ? pieces[pieces.length - 1]!.offset + pieces[pieces.length - 1]!.length : req.offset;
  if (pieces.length > MAX_READ_PIECES || covered < end) pieces = [{ offset: req.offset, length: req.length, zero: false }];
  if (req.flags & NBD_CMD_FLAG.DF && pieces.length > 1) {
    // One content chunk only: holes inside become explicit zeros (the device reads them).
    pieces = [{ offset: req.offset, length: req.length, zero: pieces.every((p) => p.zero) }];
  }

  const results = await Promise.allSettled(pieces.map((p) => (p.zero ? Promise.resolve(undefined) : readExactly(dev, p.offset, p.length, pool, owned))));
  const data: Uint8Array[] = [];
  let bytes = 0;
  let error: CommandResult["error"];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    const r = results[i]!;
    const done = i === pieces.length - 1;
    if (p.zero) {
      data.push(R.hole(req.cookie, req.rawOffset, p.offset, p.length, done));
      bytes += p.length;
    } else if (r.status === "fulfilled") {
      data.push(R.dataHeader(req.cookie, req.rawOffset, p.offset, p.length, done), r.value!);
      bytes += p.length;
    } else {
      const e = failed(req, r.reason)!;
      error ??= e;
      const at = (r.reason as PfsError | undefined)?.data?.offset;
      const bad = typeof at === "number" && at >= p.offset && at < p.offset + p.length ? at : p.offset;
      data.push(R.errorOffset(req.cookie, req.rawOffset, e.errno, messageOf(r.reason), bad, done));
    }
  }
  return error ? { data, bytes, error } : { data, bytes };
}

async function cache(req: NbdRequest, dev: BlockDevice, R: Replies): Promise<CommandResult> {
  try {
    if (dev.prefetch) await dev.prefetch(req.offset, req.length);
    return { data: [R.ok(req.cookie, req.rawOffset)], bytes: 0 };
  } catch (e) {
    const error = failed(req, e)!;
    return { data: [R.error(req.cookie, req.rawOffset, error.errno, messageOf(e))], bytes: 0, error };
  }
}

/**
 * BLOCK_STATUS for base:allocation: zero extents are HOLE|ZERO, the rest 0
 * ("allocated or unknown", always safe). Consecutive extents of one status are
 * merged. REQ_ONE: exactly one descriptor, no longer than the request.
 */
function blockStatus(req: NbdRequest, dev: BlockDevice, R: Replies): CommandResult {
  let extents: StatusExtent[];
  try {
    const reqOne = (req.flags & NBD_CMD_FLAG.REQ_ONE) !== 0;
    const max = reqOne ? 1 : MAX_STATUS_EXTENTS;
    const walked = dev.allocation ? walkAllocation(dev, req.offset, req.length, max) : [];
    extents = walked.map((e) => ({ length: e.length, flags: e.zero ? NBD_STATE.HOLE | NBD_STATE.ZERO : 0 }));
    // Nothing known (no map, or a map that made no progress): one "allocated" extent.
    if (extents.length === 0) extents = [{ length: req.length, flags: 0 }];
  } catch (e) {
    const error = failed(req, e)!;
    return { data: [R.error(req.cookie, req.rawOffset, error.errno, messageOf(e))], bytes: 0, error };
  }
  return { data: [R.blockStatus(req.cookie, req.rawOffset, BASE_ALLOCATION_ID, extents, true)], bytes: 0 };
}

/**
 * The device's allocation map of [offset, offset+length), clipped to the
 * range, with neighbours of the same kind merged, at most `max` extents.
 * Stops early (covering less) if the device returns a gap or no progress.
 */
export function walkAllocation(dev: BlockDevice, offset: number, length: number, max: number): Extent[] {
  const out: Extent[] = [];
  const end = offset + length;
  let pos = offset;
  while (pos < end) {
    const got = dev.allocation!(pos, end - pos);
    const before = pos;
    for (const e of got) {
      if (e.offset > pos) break; // a gap: the map is not contiguous, trust nothing after it
      const s = pos;
      const t = Math.min(e.offset + e.length, end);
      if (t <= s) continue;
      const last = out[out.length - 1];
      if (last && last.zero === e.zero && last.offset + last.length === s) {
        last.length += t - s;
      } else {
        if (out.length === max) return out;
        out.push({ offset: s, length: t - s, zero: e.zero });
      }
      pos = t;
    }
    if (pos === before) break;
  }
  return out;
}
