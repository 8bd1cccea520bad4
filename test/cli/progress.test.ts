import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { formatBytes, progressBar } from "../../src/cli/progress.ts";

function stream(tty: boolean): { s: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(c, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(w, { isTTY: tty, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  return { s: w, text: () => chunks.join("") };
}

describe("progress", () => {
  it("formats bytes with binary units", () => {
    expect([0, 1023, 1024, 1536, 10 * 1024 * 1024 + 1, 150 * 2 ** 30, 3 * 2 ** 40].map(formatBytes)).toEqual([
      "0 B",
      "1023 B",
      "1.00 KiB",
      "1.50 KiB",
      "10.0 MiB",
      "150 GiB",
      "3.00 TiB",
    ]);
  });

  it("draws nothing off a terminal", () => {
    const { s, text } = stream(false);
    const p = progressBar("building", s);
    p.update(10, 100, "x");
    p.stop();
    expect(text()).toBe("");
  });

  it("draws a bar with bytes done and total on a terminal", () => {
    const { s, text } = stream(true);
    const p = progressBar("building", s);
    p.update(512 * 1024, 2 << 20, "3 chunks");
    p.stop();
    expect(text()).toMatch(/building \[[█░]+\] 25% \| 512 KiB \/ 2\.00 MiB \| .* \| 3 chunks/);
  });
});
