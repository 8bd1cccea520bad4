/**
 * README.md's Quick start and usage sections against the code they describe:
 * the Quick start is exactly two commands, both present in the repository
 * (`npm run demo`, scripts/test.sh, which .ci/run runs); every `puzzlefs …`
 * line in a shell block parses with the real CLI (commander with the actual
 * option definitions; serve's options also through its validate()); and the
 * attach commands shown are the ones `puzzlefs serve` prints.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.ts";
import { attachInstructions } from "../../src/cli/serve.ts";
import { parseCommandLine, shellCommands, validateServe } from "../helpers/cli-parse.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The body of the `## TITLE` section (up to the next `## `). */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start, `README section "## ${title}"`).toBeGreaterThan(0);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** Lines of the ```sh blocks of a text. */
function shellLines(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split("\n")).filter((l) => l.trim() !== "");
}

describe("README Quick start", () => {
  const lines = shellLines(section("Quick start"));

  it("is exactly two commands: serve the sample, and install + test", () => {
    expect(lines.map((l) => shellCommands(l).map((w) => w.join(" ")))).toEqual([
      ["npm ci", "npm run demo"],
      ["bash scripts/test.sh"],
    ]);
  });

  it("names things that exist: the demo script, scripts/test.sh, and .ci/run runs the same command", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.demo).toBe("node --import tsx scripts/demo.ts");
    expect(readFileSync(join(ROOT, "scripts/test.sh"), "utf8")).toMatch(/bash scripts\/install-deps\.sh/);
    expect(readFileSync(join(ROOT, ".ci/run"), "utf8")).toMatch(/^exec bash scripts\/test\.sh$/m);
  });
});

describe("README usage", () => {
  const usage = section("Usage");
  const commands = shellLines(usage)
    .flatMap((l) => shellCommands(l))
    .filter((w) => w[0] === "puzzlefs");

  it("documents every command the CLI has", () => {
    const all = buildProgram().commands.map((c) => c.name()).filter((n) => n !== "help");
    expect(all.length).toBeGreaterThanOrEqual(8);
    expect(new Set(commands.map((w) => w[1]))).toEqual(new Set(all));
  });

  it("the check rejects what puzzlefs rejects: unknown options, missing or extra operands, bad values", async () => {
    for (const bad of [
      ["serve", "./images", "--port", "10809"],
      ["build", "./rootfs"],
      ["extract", "./images:v1", "./out", "extra"],
      ["export", "./images:v1", "v1.img", "--mtime", "yesterday"],
      ["mount", "./images:v1"],
    ]) {
      await expect(parseCommandLine(bad), bad.join(" ")).rejects.toThrow();
    }
    expect(await parseCommandLine(["serve", "./images", "--tag", "a", "--tag", "b"])).toMatchObject({
      command: "serve",
      operands: ["./images"],
      opts: { tag: ["a", "b"] },
    });
    expect(shellCommands(`a 'b c' "d" e\\ f # g`)).toEqual([["a", "b c", "d", "e f"]]);
  });

  it("every puzzlefs command line parses with the real CLI", async () => {
    for (const words of commands) {
      const p = await parseCommandLine(words.slice(1)).catch((e: Error) => {
        throw new Error(`README: ${words.join(" ")}: ${e.message}`);
      });
      if (p.command === "serve") validateServe(p);
    }
    expect(commands.length).toBeGreaterThanOrEqual(9);
  });

  it("shows the attach commands serve prints for 127.0.0.1:10809", () => {
    const printed = attachInstructions({ host: "127.0.0.1", port: 10809 }, new Map([["v1", { size: 1, description: "" }]]), "v1");
    const nbdClient = printed.find((l) => l.includes("nbd-client:"))!.replace(/^.*nbd-client: /, "");
    const qemu = printed.find((l) => l.includes("qemu:"))!.replace(/^.*qemu: +qemu-system-x86_64 \.\.\. /, "");
    expect(nbdClient).toBe("nbd-client 127.0.0.1 10809 /dev/nbd0 -N v1 -R -b 4096");
    expect(shellLines(usage).some((l) => l.startsWith(nbdClient))).toBe(true);
    expect(qemu).toBe("-drive file=nbd://127.0.0.1:10809/v1,format=raw,if=virtio,readonly=on");
    expect(shellLines(usage).some((l) => l.includes(`qemu-system-x86_64 … ${qemu}`))).toBe(true);
  });
});
