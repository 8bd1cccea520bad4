/**
 * Reader for zstd "seekable format" chunk blobs (spec §3.6): independent zstd
 * frames followed by a skippable frame holding the seek table. Both variants
 * upstream has written are accepted: the current zeekstd "Foot" table with
 * 8-byte entries {c_size, d_size} (descriptor 0x00) and the legacy
 * zstd-seekable table with 12-byte entries {c_size, d_size, checksum}
 * (descriptor 0x80; the checksum is ignored, the chunk's sha256 already
 * covers the bytes). A read decodes only the frames its range touches.
 *
 * Pure: works on bytes the caller has already verified; no I/O.
 */
// binding.js is CommonJS that re-exports a native addon: Node cannot see its names statically, so take the default export.
import zstd from "zstd-napi/binding.js";
import { PfsError } from "../../common/errors.ts";

export const SEEKABLE_MAGIC = 0x8f92eab1;
export const SKIPPABLE_SEEK_TABLE_MAGIC = 0x184d2a5e;
const FOOTER = 9;
const SKIPPABLE_HEADER = 8;
/** Upstream frames hold 4096 bytes; the zstd seekable spec allows up to 1 GiB. Cap what one frame may allocate. */
export const DEFAULT_MAX_FRAME = 16 << 20;

export interface SeekTable {
  frameCount: number;
  /** Compressed start of frame i; entry [frameCount] = end of the last frame. */
  cOffsets: Float64Array;
  /** Uncompressed start of frame i; entry [frameCount] = total uncompressed size. */
  dOffsets: Float64Array;
  /** Legacy 12-byte entries (descriptor bit 7). */
  checksums: boolean;
}

/** True when the last 4 bytes are the seekable magic (cheap test for "is this seekable-zstd?"). */
export function hasSeekableFooter(blob: Uint8Array): boolean {
  return blob.length >= FOOTER && new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(blob.length - 4, true) === SEEKABLE_MAGIC;
}

export function parseSeekTable(blob: Uint8Array, what: string, maxFrame = DEFAULT_MAX_FRAME): SeekTable {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const len = blob.length;
  if (len < FOOTER + SKIPPABLE_HEADER) throw PfsError.format(what, "too short for a zstd seek table", { expected: `≥ ${FOOTER + SKIPPABLE_HEADER} bytes`, got: len });
  const magic = dv.getUint32(len - 4, true);
  if (magic !== SEEKABLE_MAGIC) {
    throw PfsError.format(what, "bad seekable magic", { offset: len - 4, expected: "0x8f92eab1", got: `0x${magic.toString(16)}` });
  }
  const descriptor = dv.getUint8(len - 5);
  if (descriptor & 0x7c) throw PfsError.format(what, "seek table descriptor has reserved bits set", { offset: len - 5, got: `0x${descriptor.toString(16)}` });
  const checksums = (descriptor & 0x80) !== 0;
  const frameCount = dv.getUint32(len - FOOTER, true);
  const entry = checksums ? 12 : 8;
  const tableSize = frameCount * entry + FOOTER; // the skippable frame's payload
  const start = len - SKIPPABLE_HEADER - tableSize;
  if (start < 0) throw PfsError.format(what, `seek table claims ${frameCount} frames, more than the blob holds`, { expected: `≤ ${len} bytes`, got: tableSize + SKIPPABLE_HEADER });
  const skMagic = dv.getUint32(start, true);
  if (skMagic !== SKIPPABLE_SEEK_TABLE_MAGIC) {
    throw PfsError.format(what, "seek table skippable frame has a bad magic", { offset: start, expected: "0x184d2a5e", got: `0x${skMagic.toString(16)}` });
  }
  const skSize = dv.getUint32(start + 4, true);
  if (skSize !== tableSize) throw PfsError.format(what, "seek table size mismatch", { offset: start + 4, expected: tableSize, got: skSize });
  const cOffsets = new Float64Array(frameCount + 1);
  const dOffsets = new Float64Array(frameCount + 1);
  let c = 0;
  let d = 0;
  for (let i = 0, p = start + SKIPPABLE_HEADER; i < frameCount; i++, p += entry) {
    const cs = dv.getUint32(p, true);
    const ds = dv.getUint32(p + 4, true);
    if (ds > maxFrame) throw PfsError.limit(`${what} frame ${i}`, `${ds} uncompressed bytes > ${maxFrame}`);
    if (cs === 0 && ds !== 0) throw PfsError.format(what, `frame ${i} has no compressed bytes but ${ds} uncompressed`, { offset: p });
    cOffsets[i] = c;
    dOffsets[i] = d;
    c += cs;
    d += ds;
  }
  cOffsets[frameCount] = c;
  dOffsets[frameCount] = d;
  // Frames occupy [0, start). Fewer bytes than that can only be zeekstd 0.5's unrecorded final frame (§3.6), which upstream cannot read either.
  if (c > start) throw PfsError.format(what, "seek table frames run past the seek table", { expected: `≤ ${start}`, got: c });
  return { frameCount, cOffsets, dOffsets, checksums };
}

let dctx: InstanceType<typeof zstd.DCtx> | undefined;

export class SeekableReader {
  readonly table: SeekTable;
  /** Total uncompressed size. */
  readonly size: number;
  /** Frames decompressed so far (work count for tests). */
  framesDecoded = 0;

  constructor(
    private readonly blob: Uint8Array,
    private readonly what: string,
    maxFrame = DEFAULT_MAX_FRAME,
  ) {
    this.table = parseSeekTable(blob, what, maxFrame);
    this.size = this.table.dOffsets[this.table.frameCount]!;
  }

  /** Index of the frame holding uncompressed byte `pos` (0 ≤ pos < size); skips empty frames. */
  frameAt(pos: number): number {
    const d = this.table.dOffsets;
    let lo = 0;
    let hi = this.table.frameCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (d[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Decompress frame i (exactly its d_size bytes), into `out` when given (it must hold exactly d_size bytes). */
  decodeFrame(i: number, out?: Uint8Array): Uint8Array {
    const { cOffsets, dOffsets } = this.table;
    const c0 = cOffsets[i]!;
    const want = dOffsets[i + 1]! - dOffsets[i]!;
    if (out === undefined) out = new Uint8Array(want);
    else if (out.length !== want) throw PfsError.internal(`decodeFrame(${i}) into ${out.length} bytes, frame holds ${want}`);
    if (want === 0) return out;
    let n: number;
    try {
      dctx ??= new zstd.DCtx();
      // A table entry may cover two frames (zeekstd 0.5 quirk, §3.6); ZSTD_decompressDCtx decodes concatenated frames.
      n = dctx.decompress(out, this.blob.subarray(c0, cOffsets[i + 1]!));
    } catch (e) {
      throw PfsError.format(this.what, `zstd frame ${i} does not decode (${(e as Error).message})`, { offset: c0 });
    }
    if (n !== want) throw PfsError.format(this.what, `zstd frame ${i} decoded to the wrong size`, { offset: c0, expected: want, got: n });
    this.framesDecoded++;
    return out;
  }

  /**
   * Uncompressed bytes [offset, offset + dest.length) into `dest`: frames that
   * lie wholly inside the range are decompressed straight into it (no
   * allocation, no copy), the partial ones at the edges through a temporary.
   */
  readInto(offset: number, dest: Uint8Array): void {
    const length = dest.length;
    const end = offset + length;
    if (!Number.isSafeInteger(offset) || offset < 0 || end > this.size) {
      throw PfsError.format(this.what, `range [${offset}, +${length}) is outside the uncompressed data`, { expected: `≤ ${this.size}`, got: end });
    }
    const d = this.table.dOffsets;
    for (let i = length === 0 ? this.table.frameCount : this.frameAt(offset); i < this.table.frameCount && d[i]! < end; i++) {
      const f0 = d[i]!;
      const f1 = d[i + 1]!;
      if (f1 === f0) continue;
      if (f0 >= offset && f1 <= end) {
        this.decodeFrame(i, dest.subarray(f0 - offset, f1 - offset));
      } else {
        const f = this.decodeFrame(i);
        const a = Math.max(offset, f0);
        dest.set(f.subarray(a - f0, Math.min(end, f1) - f0), a - offset);
      }
    }
  }

  /** Uncompressed bytes [offset, offset+length); the range must lie inside [0, size]. */
  read(offset: number, length: number): Uint8Array {
    const end = offset + length;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || end > this.size) {
      throw PfsError.format(this.what, `range [${offset}, +${length}) is outside the uncompressed data`, { expected: `≤ ${this.size}`, got: end });
    }
    if (length === 0) return new Uint8Array(0);
    const d = this.table.dOffsets;
    let i = this.frameAt(offset);
    const first = this.decodeFrame(i);
    const fStart = d[i]!;
    if (end <= d[i + 1]!) return first.subarray(offset - fStart, end - fStart);
    const out = new Uint8Array(length);
    out.set(first.subarray(offset - fStart), 0);
    let w = first.length - (offset - fStart);
    while (w < length) {
      i++;
      const f = this.decodeFrame(i);
      const take = Math.min(f.length, length - w);
      out.set(take === f.length ? f : f.subarray(0, take), w);
      w += take;
    }
    return out;
  }
}
