/**
 * Test helpers for the OCI fixtures in test/fixtures/oci: copy one into a
 * temp directory (so a test may corrupt it), and clean up afterwards.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHash } from "node:crypto";

export const FIXTURES = resolve(import.meta.dirname, "../fixtures");
export const OCI_FIXTURES = join(FIXTURES, "oci");
export const FIXTURE_NAMES = ["sekien-noop", "sekien-zstd", "sekien-delta-noop", "mixed-noop"] as const;

export function fixtureDir(name: string): string {
  return join(OCI_FIXTURES, name);
}

export function blobPath(dir: string, hex: string): string {
  return join(dir, "blobs", "sha256", hex);
}

export function readBlob(dir: string, hex: string): Buffer {
  return readFileSync(blobPath(dir, hex));
}

export function sha256hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A scratch directory tracker: `tmp.make()` in tests, `tmp.cleanup()` in afterEach/afterAll. */
export function tmpDirs(prefix = "pfs-test-") {
  const dirs: string[] = [];
  return {
    make(): string {
      const d = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    /** A private copy of an OCI fixture. */
    copyFixture(name: string): string {
      const d = join(this.make(), name);
      cpSync(fixtureDir(name), d, { recursive: true });
      return d;
    },
    cleanup(): void {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** Overwrite one byte of a file (XOR 0xff at `offset`). */
export function flipByte(path: string, offset: number): void {
  const b = readFileSync(path);
  b[offset] = b[offset]! ^ 0xff;
  writeFileSync(path, b);
}

/** Every rootfs blob we have: the README example and the rootfs of each OCI fixture. */
export const ROOTFS_FIXTURES: Array<[string, Uint8Array]> = [
  ["readme-example", readFileSync(join(FIXTURES, "readme-example-rootfs.capnp"))],
  ["sekien-noop", readBlob(fixtureDir("sekien-noop"), "d4c6b84efac76b1abacb6e8ee42945f816fbedc612e21377b66fc0f829f83083")],
  ["sekien-zstd", readBlob(fixtureDir("sekien-zstd"), "7e3818cf94a61540ed6e73087c6498f91ea470d6b5914793ede402fd32611009")],
  ["sekien-delta-noop", readBlob(fixtureDir("sekien-delta-noop"), "7c331469cc429b0aaccfe63d6a5836c32df8df32f97523975fcc78c1af72af18")],
  ["mixed-noop", readBlob(fixtureDir("mixed-noop"), "50eec5b51267163909d423ca15f0b912a09574901856a286663a6fb5c1a01d35")],
];
