import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, canonicalJsonBytes, parseJson } from "../../src/oci/json.ts";
import { FIXTURE_NAMES, fixtureDir, sha256hex } from "../helpers/oci-fixtures.ts";

describe("oci/json canonical JSON (spec §1.2)", () => {
  it("sorts keys by UTF-16 code units, recursively, compact, omitting undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined }, A: "é/" })).toBe('{"A":"é/","a":{"d":[3,{"y":2,"z":1}]},"b":1}');
    // U+E000 sorts before U+1F600 (surrogate D83D) in UTF-16, although after it by code point.
    expect(canonicalJson({ "\u{1F600}": 1, "\uE000": 2 })).toBe('{"\u{1F600}":1,"\uE000":2}');
    expect(canonicalJson({})).toBe("{}");
  });

  it("re-serializing every fixture's index.json and manifests reproduces their exact bytes (upstream output)", () => {
    let checked = 0;
    for (const name of FIXTURE_NAMES) {
      const dir = fixtureDir(name);
      const idx = readFileSync(join(dir, "index.json"));
      expect(Buffer.from(canonicalJsonBytes(parseJson(idx, "index")))).toEqual(idx);
      for (const hex of readdirSync(join(dir, "blobs/sha256"))) {
        const b = readFileSync(join(dir, "blobs/sha256", hex));
        if (b[0] !== 0x7b) continue; // JSON blobs only
        const again = canonicalJsonBytes(parseJson(b, hex));
        expect(sha256hex(again)).toBe(hex);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(9); // 5 manifests + 4 empty configs
  });

  it("parse errors are FORMAT errors naming the object", () => {
    expect(() => parseJson(new TextEncoder().encode("{"), "manifest X")).toThrow(/^manifest X: not valid JSON/);
    expect(() => parseJson(new Uint8Array([0x22, 0xff, 0x22]), "idx")).toThrow(/idx: not valid UTF-8/);
  });
});
