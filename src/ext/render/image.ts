/**
 * The renderer (STYLE.md §6): `readAt(offset, length)` binary-searches the
 * region map and fills each piece from a metadata renderer, from
 * `tree.readFile` for file blocks, or with zeros. Metadata blocks go
 * through a small LRU so a client reading a block in 512-byte pieces
 * renders it once.
 */
import { PfsError, isPfsError } from "../../common/errors.ts";
import type { BlockDevice, Extent } from "../../common/blockdev.ts";
import { GEOM } from "../constants.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { RK, classOf } from "../layout/regions.ts";
import { renderDirBlock } from "./dir.ts";
import { renderExtentTreeBlock } from "./extent.ts";
import { renderInodeTableBlock } from "./inode.ts";
import { renderBlockBitmap, renderGdtBlock, renderInodeBitmap, renderSbGdtBlock } from "./meta.ts";
import { renderSymlinkBlock, renderXattrBlock } from "./data.ts";

const BS = GEOM.BLOCK_SIZE;

class Lru {
  private readonly m = new Map<number, Uint8Array>();
  constructor(private readonly cap: number) {}
  get(k: number, make: () => Uint8Array): Uint8Array {
    const v = this.m.get(k);
    if (v) {
      this.m.delete(k);
      this.m.set(k, v);
      return v;
    }
    const n = make();
    this.m.set(k, n);
    if (this.m.size > this.cap) this.m.delete(this.m.keys().next().value!);
    return n;
  }
}

export class ExtImage implements BlockDevice {
  readonly size: number;
  readonly blockSize = BS;
  private readonly metaCache = new Lru(256);
  private readonly gdtCache = new Lru(64);

  constructor(readonly plan: ExtPlan) {
    this.size = plan.size;
  }

  private gdt = (k: number): Uint8Array => this.gdtCache.get(k, () => renderGdtBlock(this.plan, k));

  /** Render metadata block `blk`, which lies in region i. */
  renderMeta(i: number, blk: number): Uint8Array {
    const rt = this.plan.regions;
    const k = rt.kind[i]!;
    const off = blk - rt.start[i]!;
    const arg = rt.arg[i]!;
    switch (k) {
      case RK.PRIMARY:
        return renderSbGdtBlock(this.plan, 0, off, this.gdt);
      case RK.BACKUP:
        return renderSbGdtBlock(this.plan, arg, off, this.gdt);
      case RK.BLOCK_BITMAP:
        return renderBlockBitmap(this.plan, arg + off);
      case RK.INODE_BITMAP:
        return renderInodeBitmap(this.plan, arg + off);
      case RK.INODE_TABLE:
        return renderInodeTableBlock(this.plan, arg, rt.arg2[i]! + off);
      case RK.XATTR:
        return renderXattrBlock(this.plan, arg + off);
      case RK.DIR:
        return renderDirBlock(this.plan, arg + off);
      case RK.SYMLINK:
        return renderSymlinkBlock(this.plan, arg + off);
      case RK.EXTENT_TREE:
        return renderExtentTreeBlock(this.plan, arg + off);
      default:
        throw PfsError.internal(`region kind ${k} is not metadata`);
    }
  }

  /** Bytes [offset, offset+length) of the device. */
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    this.check(offset, length);
    const out = new Uint8Array(length);
    await this.fill(offset, out, true);
    return out;
  }

  /** Same as readAt, into a caller's (possibly reused) buffer: every byte of `dest` is written. */
  async readInto(offset: number, dest: Uint8Array): Promise<void> {
    this.check(offset, dest.length);
    await this.fill(offset, dest, false);
  }

  private check(offset: number, length: number): void {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size)) {
      throw PfsError.usage(`read [${offset}, +${length}) outside the ${this.size}-byte image`);
    }
  }

  /** Fill `out` with device bytes from `offset`; `zeroed` says `out` already holds zeros. */
  private async fill(offset: number, out: Uint8Array, zeroed: boolean): Promise<void> {
    const length = out.length;
    if (length === 0) return;
    const rt = this.plan.regions;
    const end = offset + length;
    const pending: Array<Promise<void>> = [];
    for (let i = rt.find(Math.floor(offset / BS)); i < rt.count && rt.start[i]! * BS < end; i++) {
      const rs = rt.start[i]! * BS;
      const a = Math.max(offset, rs);
      const b = Math.min(end, rs + rt.len[i]! * BS);
      const k = rt.kind[i]!;
      if (classOf(k) === "zero") {
        if (!zeroed) out.fill(0, a - offset, b - offset);
        continue;
      }
      if (k === RK.FILE) {
        pending.push(this.readFile(i, a, b, out.subarray(a - offset, b - offset), zeroed));
        continue;
      }
      for (let blk = Math.floor(a / BS); blk * BS < b; blk++) {
        const data = this.metaCache.get(blk, () => this.renderMeta(i, blk));
        const s = Math.max(a, blk * BS);
        const t = Math.min(b, (blk + 1) * BS);
        out.set(data.subarray(s - blk * BS, t - blk * BS), s - offset);
      }
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** File region i, device bytes [a, b) into dst; bytes past the end of the file stay zero. */
  private async readFile(i: number, a: number, b: number, dst: Uint8Array, zeroed: boolean): Promise<void> {
    const rt = this.plan.regions;
    const e = rt.arg[i]!;
    const fileOff = rt.arg2[i]! * BS + (a - rt.start[i]! * BS);
    const tree = this.plan.tree;
    try {
      let n: number;
      if (tree.readFileInto) {
        n = await tree.readFileInto(this.plan.inodes.treeIno[e]!, fileOff, dst); // straight into the reply buffer
      } else {
        const data = await tree.readFile(this.plan.inodes.treeIno[e]!, fileOff, b - a);
        n = Math.min(data.length, b - a);
        dst.set(data.subarray(0, n));
      }
      if (!zeroed && n < dst.length) dst.fill(0, n); // past the end of the file, within its last block
    } catch (err) {
      const base = isPfsError(err) ? err : PfsError.io(`inode ${e}`, err);
      // A tree that knows which file byte failed says so in data.fileOffset; else blame the piece's start.
      const fo = base.data.fileOffset;
      const at = typeof fo === "number" && fo >= fileOff && fo < fileOff + (b - a) ? a + (fo - fileOff) : a;
      throw new PfsError(base.code, `ext image @0x${at.toString(16)} (file inode ${e}): ${base.message}`, {
        hint: base.hint,
        cause: err,
        data: { ...base.data, offset: at, ino: e },
      });
    }
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.readAt(offset, length);
  }

  /** Allocation map: zero regions are holes (NBD_STATE_HOLE | NBD_STATE_ZERO). */
  allocation(offset: number, length: number): Extent[] {
    const rt = this.plan.regions;
    const end = Math.min(this.size, offset + length);
    const out: Extent[] = [];
    for (let i = rt.find(Math.floor(offset / BS)); i < rt.count && rt.start[i]! * BS < end; i++) {
      const a = Math.max(offset, rt.start[i]! * BS);
      const b = Math.min(end, (rt.start[i]! + rt.len[i]!) * BS);
      const zero = classOf(rt.kind[i]!) === "zero";
      const last = out[out.length - 1];
      if (last && last.zero === zero) last.length += b - a;
      else out.push({ offset: a, length: b - a, zero });
    }
    return out;
  }

  /** Warm the tree's chunk cache for the file blocks in range (NBD_CMD_CACHE). */
  async prefetch(offset: number, length: number): Promise<void> {
    const tree = this.plan.tree;
    if (!tree.prefetchFile) return;
    const rt = this.plan.regions;
    const end = Math.min(this.size, offset + length);
    const jobs: Array<Promise<void>> = [];
    for (let i = rt.find(Math.floor(offset / BS)); i < rt.count && rt.start[i]! * BS < end; i++) {
      if (rt.kind[i] !== RK.FILE) continue;
      const a = Math.max(offset, rt.start[i]! * BS);
      const b = Math.min(end, (rt.start[i]! + rt.len[i]!) * BS);
      jobs.push(tree.prefetchFile(this.plan.inodes.treeIno[rt.arg[i]!]!, rt.arg2[i]! * BS + (a - rt.start[i]! * BS), b - a));
    }
    await Promise.allSettled(jobs);
  }
}
