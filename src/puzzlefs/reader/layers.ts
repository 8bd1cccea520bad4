/**
 * The layer stack of a rootfs (spec §2.3–2.4): `metadatas[0]` is the top
 * layer; an inode number resolves to the first layer (from the top) that has
 * it, by binary search in that layer's ino-sorted list, reading the message
 * bytes in place (no per-inode memory). A whiteout found first means the
 * inode is deleted.
 *
 * Positions: inode i of layer L has position `base[L] + i`, so per-inode
 * state elsewhere lives in flat typed arrays indexed by position.
 */
import { PfsError } from "../../common/errors.ts";
import type { StructRef } from "../format/capnp.ts";
import { MODE_TAG } from "../format/types.ts";
import type { RootfsView } from "../format/view.ts";

export const NOT_FOUND = -1;
export const WHITEOUT = -2;

const TWO32 = 0x100000000;

export class LayerStack {
  /** Position of each layer's inode 0; base[layers] = total positions. */
  readonly base: number[] = [0];

  constructor(readonly view: RootfsView) {
    for (let l = 0; l < view.layers.length; l++) {
      this.checkSorted(l);
      this.base.push(this.base[l]! + view.layers[l]!.count);
    }
  }

  get layerCount(): number {
    return this.view.layers.length;
  }

  get total(): number {
    return this.base[this.base.length - 1]!;
  }

  /** Binary search needs each layer sorted by ino (spec §2.3); duplicates are tolerated (§8). */
  private checkSorted(layer: number): void {
    const l = this.view.layers[layer]!;
    if (l.dataBytes < 8) return; // every ino reads as 0
    const dv = this.view.msg.dv;
    let ph = -1;
    let pl = 0;
    for (let i = 0, p = l.start; i < l.count; i++, p += l.stride) {
      const h = dv.getUint32(p + 4, true);
      const w = dv.getUint32(p, true);
      if (h < ph || (h === ph && w < pl)) {
        throw PfsError.format(`${this.view.name} metadatas[${layer}]`, `inodes are not sorted by ino at index ${i} (ino ${h * TWO32 + w} after ${ph * TWO32 + pl})`, {
          offset: p,
        });
      }
      ph = h;
      pl = w;
    }
  }

  layerOf(pos: number): number {
    let l = 0;
    while (pos >= this.base[l + 1]!) l++;
    return l;
  }

  inode(pos: number): StructRef {
    const l = this.layerOf(pos);
    return this.view.inode(l, pos - this.base[l]!);
  }

  tag(pos: number): number {
    const l = this.layerOf(pos);
    return this.view.tagAt(l, pos - this.base[l]!);
  }

  /** Position of `ino` in one layer (first non-whiteout among equal inos), WHITEOUT, or NOT_FOUND. */
  findInLayer(layer: number, ino: number): number {
    const v = this.view;
    const n = v.layers[layer]!.count;
    const hi = Math.floor(ino / TWO32);
    const lo = ino >>> 0;
    let a = 0;
    let b = n;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (v.compareIno(layer, m, hi, lo) < 0) a = m + 1;
      else b = m;
    }
    if (a >= n || v.compareIno(layer, a, hi, lo) !== 0) return NOT_FOUND;
    for (let i = a; i < n && v.compareIno(layer, i, hi, lo) === 0; i++) {
      if (v.tagAt(layer, i) !== MODE_TAG.wht) return this.base[layer]! + i;
    }
    return WHITEOUT;
  }

  /** find_inode (spec §2.4): the first layer from `fromLayer` down that has `ino`. */
  find(ino: number, fromLayer = 0): number {
    for (let l = fromLayer; l < this.view.layers.length; l++) {
      const r = this.findInLayer(l, ino);
      if (r !== NOT_FOUND) return r;
    }
    return NOT_FOUND;
  }

  /** max_inode (spec §2.4): the largest last ino over the layers, at least 1. */
  maxIno(): number {
    let max = 1;
    for (let l = 0; l < this.view.layers.length; l++) {
      const n = this.view.layers[l]!.count;
      if (n > 0) max = Math.max(max, this.view.inoNum(this.view.inode(l, n - 1)));
    }
    return max;
  }
}
