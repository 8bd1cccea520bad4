/**
 * The Dockerfile against the README and the CLI (Docker itself cannot run on
 * these machines): the container runs the same `puzzlefs serve` invocation
 * the README shows, on port 10809 (EXPOSE, --listen, health check and the
 * README's -p all agree), with the image directory as the volume the README
 * mounts, as a non-root user; the build and run commands in the Dockerfile's
 * header are the README's. The health check script is run for real against
 * `puzzlefs serve` (healthy) and against things that are not an NBD server.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCommandLine, shellCommands, validateServe } from "../helpers/cli-parse.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");

/** Instructions of the final stage: [KEYWORD, arguments], continuation lines joined. */
function finalStage(text: string): Array<[string, string]> {
  const logical = text.replace(/\\\n\s*/g, " ").split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  const ins = logical.map((l): [string, string] => {
    const m = /^(\w+)\s+(.*)$/.exec(l.trim())!;
    return [m[1]!.toUpperCase(), m[2]!.trim()];
  });
  const last = ins.map(([k]) => k).lastIndexOf("FROM");
  return ins.slice(last);
}

const stage = finalStage(DOCKERFILE);
const one = (k: string): string => {
  const all = stage.filter(([x]) => x === k);
  expect(all.length, `one ${k} in the final stage`).toBe(1);
  return all[0]![1];
};
const entrypoint = JSON.parse(one("ENTRYPOINT")) as string[];
const cmd = JSON.parse(one("CMD")) as string[];

/** The README's docker lines, as commands of words. */
const readmeDocker = [...README.matchAll(/```sh\n([\s\S]*?)```/g)]
  .flatMap((m) => m[1]!.split("\n"))
  .flatMap((l) => shellCommands(l))
  .filter((w) => w[0] === "docker");

describe("Dockerfile", () => {
  it("runs node bin/puzzlefs.js serve on the image volume, and the CLI accepts that command line", async () => {
    expect(entrypoint).toEqual(["node", "bin/puzzlefs.js"]);
    expect(cmd[0]).toBe("serve");
    const p = await parseCommandLine(cmd);
    const o = validateServe(p);
    expect(o.ociDir).toBe(one("VOLUME"));
    expect(o.listen).toEqual({ host: "0.0.0.0", port: 10809 });
  });

  it("exposes port 10809 and health-checks that port, as a non-root user", () => {
    expect(one("EXPOSE")).toBe("10809");
    expect(one("HEALTHCHECK")).toMatch(/CMD \["node", "contrib\/docker-healthcheck\.mjs", "10809"\]$/);
    expect(stage.some(([k, a]) => k === "COPY" && a.endsWith("/app/contrib/docker-healthcheck.mjs ./contrib/"))).toBe(true);
    expect(one("USER")).not.toMatch(/^(root|0)$/);
  });

  it("is what the README shows: the same serve invocation, port and volume", () => {
    expect(README).toContain(`runs \`puzzlefs ${cmd.join(" ")}\` inside`);
    const run = readmeDocker.find((w) => w[1] === "run")!;
    const build = readmeDocker.find((w) => w[1] === "build")!;
    const image = build[build.indexOf("-t") + 1]!;
    expect(run.at(-1)).toBe(image);
    // -p HOSTIP:HOSTPORT:CONTAINERPORT, -v HOSTDIR:CONTAINERDIR[:ro]
    expect(run[run.indexOf("-p") + 1]).toBe("127.0.0.1:10809:10809");
    expect(run[run.indexOf("-v") + 1]!.split(":")[1]).toBe(one("VOLUME"));
    // The usage comment at the top of the Dockerfile is the README's two commands.
    const header = DOCKERFILE.split("\n").filter((l) => /^#\s+docker (build|run) /.test(l)).map((l) => l.replace(/^#\s+/, ""));
    expect(header.map((l) => shellCommands(l)[0])).toEqual([build, run]);
  });
});

describe("contrib/docker-healthcheck.mjs", () => {
  const servers: Array<{ stop: () => void }> = [];
  let nbdPort = 0;
  let otherPort = 0;
  let closedPort = 0;
  let otherConnections = 0;
  const listen = (s: Server) => new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as { port: number }).port)));

  beforeAll(async () => {
    // The real server: `puzzlefs serve --raw` of a small file, on a free port.
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/helpers/cli-entry.ts"), "serve", "--raw", `x=${join(ROOT, "package.json")}`, "--listen", "127.0.0.1:0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    servers.push({ stop: () => child.kill("SIGTERM") });
    nbdPort = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (c) => reject(new Error(`puzzlefs serve exited ${c}`)));
    });
    const http = createServer((s) => {
      otherConnections++;
      s.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    otherPort = await listen(http);
    servers.push({ stop: () => http.close() });
    const gone = createServer();
    closedPort = await listen(gone);
    await new Promise((r) => gone.close(r));
  });
  afterAll(() => servers.forEach((s) => s.stop()));

  // Asynchronously: the other server lives in this process and must keep answering.
  const check = (port: number) =>
    new Promise<number | null>((resolve) => {
      const c = spawn(process.execPath, [join(ROOT, "contrib/docker-healthcheck.mjs"), String(port)], { stdio: "ignore" });
      c.once("exit", (code) => resolve(code));
    });

  it("is healthy (exit 0) against puzzlefs serve, unhealthy (1) against another server or a closed port", async () => {
    expect(await Promise.all([check(nbdPort), check(otherPort), check(closedPort)])).toEqual([0, 1, 1]);
    expect(otherConnections).toBe(1); // the other server was reached and answered (not a connect failure)
  });
});
