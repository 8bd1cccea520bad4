import { describe, expect, it } from "vitest";
import { grow, lastAtMost, trim } from "../../../src/ext/layout/arrays.ts";

describe("typed-array helpers", () => {
  it("grow keeps contents and type, trim cuts to length", () => {
    const g = grow(Uint16Array.of(1, 2, 3), 10);
    expect(g).toBeInstanceOf(Uint16Array);
    expect([...g.subarray(0, 4)]).toEqual([1, 2, 3, 0]);
    expect(g.length).toBeGreaterThanOrEqual(10);
    expect([...trim(g, 2)]).toEqual([1, 2]);
  });

  it("lastAtMost finds the last element ≤ x among the first n", () => {
    const a = Float64Array.of(0, 5, 5, 9, 100);
    expect([lastAtMost(a, 5, -1), lastAtMost(a, 5, 0), lastAtMost(a, 5, 5), lastAtMost(a, 5, 8), lastAtMost(a, 5, 1e9), lastAtMost(a, 3, 1e9)]).toEqual([-1, 0, 2, 2, 4, 2]);
  });
});
