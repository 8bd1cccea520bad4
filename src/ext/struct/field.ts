/**
 * On-disk structures are declared once, as data (STYLE.md §3): a table of
 * `[name, offset, width, comment]` rows. `defineStruct` indexes the table and
 * `StructView` reads and writes little-endian fields by name, so the renderer
 * never spells an offset twice. Layout tests check every table is contiguous
 * and has the kernel's size.
 */
export type FieldRow = readonly [name: string, off: number, size: number, doc: string];

export interface FieldDef {
  readonly off: number;
  readonly size: number;
}

export interface StructDef<N extends string> {
  readonly name: string;
  readonly size: number;
  readonly rows: readonly FieldRow[];
  readonly f: Readonly<Record<N, FieldDef>>;
}

type NamesOf<R extends readonly FieldRow[]> = R[number][0];

export function defineStruct<const R extends readonly FieldRow[]>(name: string, size: number, rows: R): StructDef<NamesOf<R>> {
  const f: Record<string, FieldDef> = {};
  for (const [n, off, sz] of rows) f[n] = { off, size: sz };
  return { name, size, rows, f: f as Record<NamesOf<R>, FieldDef> };
}

/** Problems with a table: gaps, overlaps, wrong total. Empty when sound. */
export function layoutProblems(def: StructDef<string>): string[] {
  const out: string[] = [];
  let at = 0;
  for (const [n, off, size] of def.rows) {
    if (off !== at) out.push(`${def.name}.${n}: offset 0x${off.toString(16)}, expected 0x${at.toString(16)}`);
    if (size <= 0) out.push(`${def.name}.${n}: empty field`);
    at = off + size;
  }
  if (at !== def.size) out.push(`${def.name}: ends at 0x${at.toString(16)}, expected 0x${def.size.toString(16)}`);
  return out;
}

/** Little-endian field access to one instance of a struct inside a buffer. */
export class StructView<N extends string> {
  private readonly dv: DataView;

  constructor(
    readonly def: StructDef<N>,
    readonly buf: Uint8Array,
    readonly base = 0,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Write an unsigned integer field; 8-byte fields take values up to 2^53. */
  set(name: N, value: number): this {
    const { off, size } = this.def.f[name];
    const at = this.base + off;
    switch (size) {
      case 1:
        this.dv.setUint8(at, value);
        break;
      case 2:
        this.dv.setUint16(at, value, true);
        break;
      case 4:
        this.dv.setUint32(at, value >>> 0, true);
        break;
      case 8:
        this.dv.setUint32(at, value % 0x1_0000_0000, true);
        this.dv.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
        break;
      default:
        throw new RangeError(`${this.def.name}.${name}: width ${size} is not an integer field`);
    }
    return this;
  }

  get(name: N): number {
    const { off, size } = this.def.f[name];
    const at = this.base + off;
    switch (size) {
      case 1:
        return this.dv.getUint8(at);
      case 2:
        return this.dv.getUint16(at, true);
      case 4:
        return this.dv.getUint32(at, true);
      case 8:
        return this.dv.getUint32(at, true) + this.dv.getUint32(at + 4, true) * 0x1_0000_0000;
      default:
        throw new RangeError(`${this.def.name}.${name}: width ${size} is not an integer field`);
    }
  }

  /** Copy bytes into a byte-array field (at most its width; the rest stays as is). */
  setBytes(name: N, bytes: Uint8Array): this {
    const { off, size } = this.def.f[name];
    if (bytes.length > size) throw new RangeError(`${this.def.name}.${name}: ${bytes.length} bytes exceed width ${size}`);
    this.buf.set(bytes, this.base + off);
    return this;
  }

  bytes(name: N): Uint8Array {
    const { off, size } = this.def.f[name];
    return this.buf.subarray(this.base + off, this.base + off + size);
  }
}
