import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isPfsError } from "../../../src/common/errors.ts";
import { readStream } from "../../../src/puzzlefs/builder/stream.ts";
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
