import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isPfsError } from "../../../src/common/errors.ts";
import { StreamReader, readStream } from "../../../src/puzzlefs/builder/stream.ts";
import { walk, type WalkResult } from "../../../src/puzzlefs/builder/walk.ts";
import { makeTree, removeTree, tempDir, type TreeSpec } from "../../helpers/tree.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeTree));
function tree(spec: TreeSpec): string {
  const d = tempDir();
  dirs.push(d);
  makeTree(d, spec);
  return d;
}

describe("readStream (spec §3.3)", () => {
  it("yields the files' bytes in stream order, skipping empty files", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    const d = tree([["a", { type: "file", data: "aa" }], ["b", { type: "file" }], ["c", { type: "file", data: big }]]);
    const parts: Buffer[] = [];
    for await (const b of readStream(walk(d).stream)) parts.push(Buffer.from(b));
    expect(Buffer.concat(parts).equals(Buffer.concat([Buffer.from("aa"), big]))).toBe(true);
  });

  it("StreamReader: reads of any size, into the caller's buffers, give the same bytes; files may arrive while reading", () => {
    const big = Buffer.alloc(40_001, 9);
    const d = tree([["a", { type: "file", data: "hello" }], ["b", { type: "file" }], ["c", { type: "file", data: big }], ["d", { type: "file", data: "z" }]]);
    const all = walk(d).stream;
    const expected = Buffer.concat([Buffer.from("hello"), big, Buffer.from("z")]);
    for (const size of [1, 7, 4096, 40_001, 1 << 20]) {
      // The files come one at a time, as the walk finds them.
      const files = all.slice(0, 1);
      let asked = 0;
      const r = new StreamReader(files, () => {
        asked++;
        if (files.length === all.length) return false;
        files.push(all[files.length]!);
        return true;
      });
      const parts: Buffer[] = [];
      const dest = new Uint8Array(size);
      for (let n = r.read(dest); n > 0; n = r.read(dest)) {
        expect(n).toBeLessThanOrEqual(size);
        parts.push(Buffer.from(dest.subarray(0, n)));
      }
      expect(Buffer.concat(parts).equals(expected), `read size ${size}`).toBe(true);
      expect(asked).toBe(all.length);
      expect(r.read(dest)).toBe(0);
    }
  });

  it("fails with a clear error when a file grows, shrinks or turns into a symlink after the walk", async () => {
    const d = tree([["a", { type: "file", data: "aaaa" }], ["b", { type: "file", data: "bbbb" }]]);
    const drain = async (r: WalkResult) => {
      for await (const _ of readStream(r.stream));
    };
    let r = walk(d);
    appendFileSync(join(d, "b"), "more");
    await expect(drain(r)).rejects.toThrow(/\/b: grew beyond its 4 bytes while the image was being built/);
    r = walk(d);
    writeFileSync(join(d, "a"), "a");
    await expect(drain(r)).rejects.toThrow(/\/a: shrank from 4 to 1 bytes/);
    r = walk(d);
    execFileSync("ln", ["-sf", "b", join(d, "a")]);
    await expect(drain(r)).rejects.toSatisfy((e: unknown) => isPfsError(e) && /opening .*\/a: ELOOP/.test((e as Error).message));
  });

  it("reports an unreadable file with its path (as an unprivileged user)", () => {
    const d = tree([["secret", { type: "file", data: "s", mode: 0o600 }]]);
    const mod = (m: string) => JSON.stringify(join(process.cwd(), `src/puzzlefs/builder/${m}.ts`));
    const script = `import { walk } from ${mod("walk")}; import { readStream } from ${mod("stream")};
      try { for await (const _ of readStream(walk(${JSON.stringify(d)}).stream)); console.log("no error"); }
      catch (e) { console.log(e.code + " " + e.message); }`;
    const out = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { uid: 65534, gid: 65534, encoding: "utf8" });
    expect(out.stdout.trim()).toMatch(/^IO opening .*\/secret: EACCES/);
  });
});
