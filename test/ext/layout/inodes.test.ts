import { describe, expect, it } from "vitest";
import { InoMap, InodeArrays } from "../../../src/ext/layout/inodes.ts";

describe("per-inode arrays", () => {
  it("InoMap keeps dense tree inos in a typed array and the rest in a Map", () => {
    const m = new InoMap(10);
    m.set(3, 12);
    m.set(2 ** 40, 13);
    m.set(1e6, 14);
    expect([m.get(3), m.get(2 ** 40), m.get(1e6), m.get(4)]).toEqual([12, 13, 14, undefined]);
  });

  it("InodeArrays grow on demand and trim to the count when sealed", () => {
    const a = new InodeArrays(4);
    a.ensure(1000);
    a.nlink[1000] = 7;
    a.count = 1000;
    a.seal();
    expect(a.nlink.length).toBe(1001);
    expect(a.nlink[1000]).toBe(7);
    expect(a.flags.length).toBe(1001);
  });
});
