import { describe, expect, it } from "vitest";
import { fixtureDir } from "../helpers/oci-fixtures.ts";
import { runCli, spawnCli } from "../helpers/run-cli.ts";

describe("cli info", () => {
  it("lists tags and, per image, manifest digest, fs-verity, layers, inodes, logical and stored bytes", async () => {
    const r = await runCli(["info", fixtureDir("sekien-delta-noop")]);
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    expect(out).toMatch(/^tags: +test, test2$/m);
    expect(out).toContain("manifest:        sha256:204830e103f0802ea90533d2b5afefbe58100256d8bc99e035f47803aa9ce66f (637 bytes)");
    expect(out).toContain("fs-verity:       551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d");
    expect(out).toContain("rootfs:          sha256:7c331469cc429b0aaccfe63d6a5836c32df8df32f97523975fcc78c1af72af18 (704 bytes, 2 metadata layers)");
    expect(out.match(/^inodes: +(\d+)$/gm)).toEqual(["inodes:          2", "inodes:          3"]);
    expect(out).toMatch(/^logical bytes: +109466$/m);
    // stored = manifest 637 + config 2 + rootfs 704 + jpg 109466
    expect(out).toMatch(/^stored bytes: +110809$/m);
  });

  it("--json for one tag of mixed-noop", async () => {
    const r = await runCli(["info", `${fixtureDir("mixed-noop")}:mixed`, "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout.toString());
    expect(j.tags).toEqual([{ tag: "mixed", digest: "sha256:e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052", size: 1103 }]);
    expect(j.images[0]).toMatchObject({
      tag: "mixed",
      inodes: 9,
      logicalBytes: 300009,
      storedBytes: 1103 + 2 + 1584 + 152560 + 72716 + 58762 + 15971,
      chunkBlobs: { listed: 4, distinct: 4, mediaTypes: ["application/vnd.puzzlefs.image.filedata.v1"] },
    });
  });

  it("--digest is checked; a wrong one is exit 2", async () => {
    const ok = await runCli(["info", `${fixtureDir("sekien-noop")}:test`, "--digest", "551f8d489fdd1821c40c02aee55bfc41ce43b667af27e84c6b61c0312cac885d"]);
    expect(ok.code).toBe(0);
    const bad = await runCli(["info", `${fixtureDir("sekien-noop")}:test`, "--digest", "11".repeat(32)]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^puzzlefs: manifest sha256:9514.*: fs-verity mismatch: expected 1111/);
    expect((await runCli(["info", fixtureDir("sekien-noop"), "--digest", "11".repeat(32)])).code).toBe(1);
  });

  it("errors: missing directory and unknown tag are exit 2, a malformed argument exit 1; --help exit 0", async () => {
    const missing = spawnCli(["info", "/nonexistent/oci"]);
    expect([missing.code, missing.stderr.split("\n")[0]]).toEqual([2, "puzzlefs: OCI directory /nonexistent/oci: not found"]);
    const tag = await runCli(["info", `${fixtureDir("sekien-noop")}:nope`]);
    expect([tag.code, tag.stderr]).toEqual([2, expect.stringMatching(/tag "nope" in .*: not found\n  hint: available tags: test\n/)]);
    expect((await runCli(["info", "a:b:c"])).code).toBe(1);
    expect((await runCli(["info"])).code).toBe(1);
    const help = await runCli(["info", "--help"]);
    expect([help.code, help.stdout.toString()]).toEqual([0, expect.stringContaining("Usage: puzzlefs info [options] <OCI_DIR[:TAG]>")]);
  });
});
