/**
 * Constants are `as const` objects (STYLE.md §4); `nameOf` turns a value back
 * into its symbolic name for log lines, and never throws.
 */
export function nameOf(table: Readonly<Record<string, number>>, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return `unknown (0x${value.toString(16)})`;
}
