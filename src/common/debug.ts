import { debuglog } from "node:util";

/**
 * Library code logs only through these (NODE_DEBUG=nbd,ext,pfs,oci), never to
 * the console directly (STYLE.md §11). The CLI decides what the user sees.
 */
export const log = {
  oci: debuglog("oci"),
  pfs: debuglog("pfs"),
  ext: debuglog("ext"),
  nbd: debuglog("nbd"),
} as const;
