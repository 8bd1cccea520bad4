import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { guestNbdtab } from "../../integration/lib/guest-assets.ts";

describe("guestNbdtab", () => {
  it("points every entry of contrib/nbdtab at the guest's view of the server and keeps the rest", () => {
    const text = readFileSync("contrib/nbdtab", "utf8");
    const out = guestNbdtab(text);
    const entries = out.split("\n").filter((l) => !/^\s*(#|$)/.test(l));
    expect(entries).toEqual(["nbd0      10.0.2.100  base    port=10809,bs=4096"]);
    // Comments and blank lines are untouched, and only the host column changed.
    expect(out.split("\n").length).toBe(text.split("\n").length);
    expect(out.replace("10.0.2.100", "127.0.0.1")).toBe(text);
  });
});
