/**
 * zstd seekable *encoder*, byte-compatible with upstream puzzlefs `build -c`
 * (zeekstd 0.5.0 on libzstd 1.5.7; spec §3.6).
 *
 *   frame_0 … frame_{F-1}        independent zstd frames, 4096 input bytes each
 *   u32 0x184D2A5E               skippable frame magic
 *   u32 F*8 + 9                  skippable frame size
 *   F × {u32 c_size, u32 d_size} seek table ("Foot" format, no checksums)
 *   u32 F, u8 0x00, u32 0x8F92EAB1
 *
 * Each frame goes through libzstd's *streaming* API exactly as zeekstd drives
 * it: input with ZSTD_e_continue, then ZSTD_e_end with empty input, then a
 * session reset. The frame size is therefore unknown when the frame starts, so
 * every header is `28 B5 2F FD 00 58` (no content size, windowLog 21); a
 * one-shot compress would write different bytes.
 *
 * zeekstd 0.5.0 quirk (fixed in 0.6.0), emulated here: its output passes
 * through a ZSTD_CStreamOutSize() = 131591-byte buffer, and when a frame ends
 * exactly at a multiple of 131591 bytes of output, the end is not recorded.
 * The next write then ends an *empty* frame (9 bytes) and logs one seek-table
 * entry covering both; at the end of input the frame is simply missing from
 * the seek table.
 */
import binding from "zstd-napi/binding.js";
import { PfsError } from "../../common/errors.ts";
import { nativeSeekable } from "../native.ts";

export const SEEKABLE_FRAME_SIZE = 4096;
export const SEEKABLE_LEVEL = 3;
export const SKIPPABLE_SEEK_TABLE_MAGIC = 0x184d2a5e;
export const SEEKABLE_MAGIC = 0x8f92eab1;
/** ZSTD_CStreamOutSize() for libzstd 1.5.x: zeekstd's output buffer. */
const ZEEKSTD_OUT_BUF = 131591;

const EMPTY = new Uint8Array(0);
let cctx: binding.CCtx | null = null;

function context(): binding.CCtx {
  if (!cctx) {
    const c = new binding.CCtx();
    c.setParameter(binding.CParameter.compressionLevel, SEEKABLE_LEVEL);
    c.setParameter(binding.CParameter.checksumFlag, 0);
    cctx = c;
  }
  return cctx;
}

/** Run ZSTD_e_end with no input until the frame is fully flushed; returns bytes written. */
function endFrame(c: binding.CCtx, out: Uint8Array, pos: number): number {
  const start = pos;
  for (;;) {
    const [remaining, produced] = c.compressStream2(out.subarray(pos), EMPTY, binding.EndDirective.end);
    pos += produced;
    if (remaining === 0) return pos - start;
    if (produced === 0) throw PfsError.internal("zstd made no progress ending a frame");
  }
}

let native: ((data: Uint8Array) => Uint8Array) | null | undefined;

/**
 * Compress `data` into the seekable format puzzlefs stores for chunk blobs:
 * with the native addon's encoder when it was built (same libzstd, same
 * bytes, no per-frame N-API round trips), else compressSeekableJs.
 */
export function compressSeekable(data: Uint8Array): Uint8Array {
  if (native === undefined) native = nativeSeekable();
  return native ? native(data) : compressSeekableJs(data);
}

/** The reference encoder, driving zstd-napi's streaming API from JS. */
export function compressSeekableJs(data: Uint8Array): Uint8Array {
  const c = context();
  const frames = Math.max(1, Math.ceil(data.length / SEEKABLE_FRAME_SIZE));
  // Worst case per frame: compressBound(4096) plus a possible 9-byte empty frame.
  const perFrame = binding.compressBound(SEEKABLE_FRAME_SIZE) + 9;
  const out = Buffer.allocUnsafe(frames * perFrame + frames * 8 + 17);
  const table: number[] = [];
  let pos = 0;
  c.reset(binding.ResetDirective.sessionOnly);
  for (let f = 0; f < frames; f++) {
    const src = data.subarray(f * SEEKABLE_FRAME_SIZE, (f + 1) * SEEKABLE_FRAME_SIZE);
    const start = pos;
    for (let used = 0; used < src.length; ) {
      const [, produced, consumed] = c.compressStream2(out.subarray(pos), src.subarray(used), binding.EndDirective.continue);
      pos += produced;
      used += consumed;
    }
    pos += endFrame(c, out, pos);
    const last = f === frames - 1;
    if (pos % ZEEKSTD_OUT_BUF === 0) {
      // The quirk: an unrecorded frame end (see the header comment).
      if (last) break;
      pos += endFrame(c, out, pos);
    }
    table.push(pos - start, src.length);
    c.reset(binding.ResetDirective.sessionOnly);
  }
  const n = table.length / 2;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(pos, SKIPPABLE_SEEK_TABLE_MAGIC, true);
  dv.setUint32(pos + 4, n * 8 + 9, true);
  pos += 8;
  for (const v of table) {
    dv.setUint32(pos, v, true);
    pos += 4;
  }
  dv.setUint32(pos, n, true);
  dv.setUint8(pos + 4, 0);
  dv.setUint32(pos + 5, SEEKABLE_MAGIC, true);
  pos += 9;
  return out.subarray(0, pos);
}
