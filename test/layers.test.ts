import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// ARCHITECTURE.md: imports only go down the layers
// cli -> nbd -> ext -> puzzlefs -> oci -> common.
const RANK: Record<string, number> = { common: 0, oci: 1, puzzlefs: 2, ext: 3, nbd: 4, cli: 5 };

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith(".ts")) yield p;
  }
}

describe("layering", () => {
  it("no module imports from a layer above its own, and nbd never imports ext or puzzlefs", () => {
    const bad: string[] = [];
    for (const f of files("src")) {
      const layer = relative("src", f).split("/")[0]!;
      const own = RANK[layer];
      if (own === undefined) {
        bad.push(`${f}: not in a known layer`);
        continue;
      }
      for (const m of readFileSync(f, "utf8").matchAll(/^(?:import|export)[^;]*?from\s+"(\.[^"]+)"/gms)) {
        const target = relative("src", join(f, "..", m[1]!)).split("/")[0]!;
        const rank = RANK[target];
        if (rank === undefined || rank > own) bad.push(`${f} imports ${m[1]}`);
        if (layer === "nbd" && (target === "ext" || target === "puzzlefs")) bad.push(`${f} imports ${m[1]}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
