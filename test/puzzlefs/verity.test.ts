import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hasNativeAddon } from "../../src/puzzlefs/native.ts";
import { fsVerityDigest, fsVerityDigestJs, fsVerityHex, fsVerityRoot } from "../../src/puzzlefs/verity.ts";
import { FIXTURES, fixtureDir, readBlob } from "../helpers/oci-fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "pfs-verity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oracle(data: Uint8Array): string {
  const p = join(dir, "f");
  writeFileSync(p, data);
  const out = execFileSync("fsverity", ["digest", "--hash-alg=sha256", "--block-size=4096", p], { encoding: "utf8" });
  return out.split(" ")[0]!.replace(/^sha256:/, "");
}

/** Deterministic pseudo-random bytes. */
function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe("puzzlefs/verity fs-verity digest (spec §3.7)", () => {
  it("README rootfs: 7b22d021… (spec §6)", () => {
    const b = readFileSync(join(FIXTURES, "readme-example-rootfs.capnp"));
    expect(fsVerityHex(b)).toBe("7b22d0210c16134159be75d8239d100817b451591d39af2031d94ae84ac4f8c7");
  });

  it("fixture manifests and rootfs annotations", () => {
    const noop = fixtureDir("sekien-noop");
    expect(fsVerityHex(readBlob(noop, "9514246f6b520bfa1d49a9e63546ab84ab7e11a869f42f4b12e9f96dcb31b46c"))).toBe(
      "551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d",
    );
    expect(fsVerityHex(readBlob(noop, "d4c6b84efac76b1abacb6e8ee42945f816fbedc612e21377b66fc0f829f83083"))).toBe(
      "e290f007303c17316bda16cb3323282dce725531cc8f1f006466c617b83ad57c",
    );
  });

  it("empty input has an all-zero root", () => {
    expect(fsVerityRoot(new Uint8Array())).toEqual(new Uint8Array(32));
  });

  it("equals `fsverity digest` at block-boundary sizes and multi-level trees", () => {
    // 0, <1 block, exactly 1 block, 1 block + 1, 128 blocks (one full level-1 block), 129 blocks (two level-1 blocks), 3 MB (3 levels).
    for (const [i, n] of [0, 1, 4095, 4096, 4097, 109466, 128 * 4096, 128 * 4096 + 1, 3_000_000].entries()) {
      const data = bytes(n, i + 7);
      const want = oracle(data);
      expect(Buffer.from(fsVerityDigest(data)).toString("hex"), `size ${n}`).toBe(want);
      expect(Buffer.from(fsVerityDigestJs(data)).toString("hex"), `JS, size ${n}`).toBe(want);
    }
  });

  it("the native digest (used when the addon builds, as on CI) equals the JS reference, including a 4-level tree", () => {
    expect(hasNativeAddon()).toBe(true);
    // 128*128*4096 + 1 bytes needs level 0, 1 and 2 blocks plus a root level.
    for (const [i, n] of [1, 4096, 8191, 128 * 128 * 4096 + 1].entries()) {
      const data = bytes(n, 100 + i);
      expect(Buffer.from(fsVerityDigest(data)).toString("hex"), `size ${n}`).toBe(Buffer.from(fsVerityDigestJs(data)).toString("hex"));
    }
  });
});
