/**
 * Typed-array helpers: the plan keeps per-inode facts in typed arrays, not
 * objects, so a planned image costs tens of bytes per inode (issue 4:
 * memory ≤ 64 MB + 300 B/inode).
 */
type Typed = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

/** A copy of `a` with at least `min` (default: twice the) capacity. */
export function grow<T extends Typed>(a: T, min = a.length * 2): T {
  const C = a.constructor as new (n: number) => T;
  const b = new C(Math.max(min, a.length * 2, 16));
  b.set(a as never);
  return b;
}

/** A copy trimmed to `n` elements (frees the doubling slack once planning ends). */
export function trim<T extends Typed>(a: T, n: number): T {
  return (a.length === n ? a : a.slice(0, n)) as T;
}

/** Index of the last element ≤ x in a sorted array (−1 if none). */
export function lastAtMost(a: ArrayLike<number>, n: number, x: number): number {
  let lo = 0;
  let hi = n - 1;
  let ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) {
      ans = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}
