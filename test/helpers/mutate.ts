/**
 * TEST-ONLY fast-check arbitrary of mutations of a valid byte string, the
 * kinds a fuzzer or a broken peer produces: truncation, bit flips, "huge
 * length" overwrites of 1/2/4/8-byte fields with boundary values, splices of
 * random bytes, deleted and duplicated ranges. Positions are taken modulo the
 * current length, so any mutation list applies to any input.
 */
import { fc } from "@fast-check/vitest";

/** Big- and little-endian boundary values: the lengths, counts and offsets that break parsers. */
const INTERESTING: readonly bigint[] = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

export type Mutation =
  | { kind: "truncate"; pos: number }
  | { kind: "flip"; pos: number; bit: number }
  | { kind: "field"; pos: number; width: 1 | 2 | 4 | 8; value: bigint; le: boolean }
  | { kind: "insert"; pos: number; bytes: Uint8Array }
  | { kind: "delete"; pos: number; len: number }
  | { kind: "duplicate"; pos: number; len: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
  fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant("field" as const), pos: fc.nat(), width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), value: fc.constantFrom(...INTERESTING), le: fc.boolean() }),
  fc.record({ kind: fc.constant("insert" as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }),
  fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("duplicate" as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
);

export function applyMutation(input: Uint8Array, m: Mutation): Uint8Array {
  const b = Buffer.from(input);
  const n = b.length;
  const at = n === 0 ? 0 : m.pos % n;
  switch (m.kind) {
    case "truncate":
      return b.subarray(0, at);
    case "flip":
      if (n > 0) b[at] = b[at]! ^ (1 << m.bit);
      return b;
    case "field": {
      if (n < m.width) return b;
      const p = Math.min(at, n - m.width);
      const v = m.value & ((1n << BigInt(8 * m.width)) - 1n);
      for (let i = 0; i < m.width; i++) b[m.le ? p + i : p + m.width - 1 - i] = Number((v >> BigInt(8 * i)) & 0xffn);
      return b;
    }
    case "insert":
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    case "delete":
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    case "duplicate":
      return Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
  }
}

/** 1–4 mutations applied in order to `base`. */
export function mutated(base: Uint8Array, max = 4): fc.Arbitrary<Uint8Array> {
  return fc.array(mutationArb, { minLength: 1, maxLength: max }).map((ms) => ms.reduce<Uint8Array>((b, m) => applyMutation(b, m), base));
}
