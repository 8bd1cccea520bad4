/**
 * Single-block data-area metadata: shared xattr blocks (attributes.rst) and
 * slow symlink targets (a symlink of 60..4095 bytes keeps its target in one
 * data block, NUL-padded).
 */
import { GEOM } from "../constants.ts";
import { setXattrBlockCsum } from "../csum.ts";
import type { ExtPlan } from "../layout/plan.ts";
import { canonicalXattrs } from "../layout/xattrs.ts";
import { encodeXattrBlock } from "../struct/xattr.ts";
import { nodeOf, xattrBlockPhys } from "./inode.ts";

/** Xattr block at logical data-area block `l`, rendered from its first owner's xattrs. */
export function renderXattrBlock(plan: ExtPlan, l: number): Uint8Array {
  const x = l - plan.sections.xattr;
  const owner = plan.xattrBlocks.owner[x]!;
  const buf = new Uint8Array(GEOM.BLOCK_SIZE);
  encodeXattrBlock(buf, canonicalXattrs(nodeOf(plan, owner).xattrs, `inode ${owner}`), plan.xattrBlocks.refcount[x]!);
  setXattrBlockCsum(plan.opts.csumSeed, xattrBlockPhys(plan, x), buf);
  return buf;
}

export function renderSymlinkBlock(plan: ExtPlan, l: number): Uint8Array {
  const e = plan.symIno[l - plan.sections.symlinks]!;
  const buf = new Uint8Array(GEOM.BLOCK_SIZE);
  buf.set(nodeOf(plan, e).symlinkTarget!);
  return buf;
}
