/**
 * The seam between `ext/` (or a raw image file) and `nbd/` (ARCHITECTURE.md).
 * `nbd/` serves any BlockDevice and knows nothing about what produces it.
 */
export interface Extent {
  offset: number;
  length: number;
  /** true: reads as zeros and occupies no storage (NBD_STATE_HOLE | NBD_STATE_ZERO). */
  zero: boolean;
}

export interface BlockDevice {
  /** Size in bytes (a multiple of 4096 for synthesized images). */
  readonly size: number;
  /** Preferred I/O size in bytes (4096). */
  readonly blockSize: number;
  /**
   * Bytes [offset, offset+length). Callers guarantee the range is inside
   * [0, size). Rejects with a PfsError on failure; when part of the range was
   * good, `err.data.offset` is the absolute offset of the first bad byte.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional fast path with the same contract as `read`: fill all of `dest`
   * with the bytes at [offset, offset + dest.length). Lets the NBD server
   * reuse its reply buffers instead of allocating one per request.
   */
  readInto?(offset: number, dest: Uint8Array): Promise<void>;
  /**
   * Allocation map of [offset, offset+length): contiguous extents in order,
   * covering at least `offset` and at most the whole range. Optional.
   */
  allocation?(offset: number, length: number): Extent[];
  /** Warm caches for a later read (NBD_CMD_CACHE). Failure is harmless. */
  prefetch?(offset: number, length: number): Promise<void>;
  close?(): Promise<void>;
}
