import { describe, expect, it } from "vitest";
import { OciLayout } from "../../src/oci/layout.ts";
import { localImageSource } from "../../src/oci/source.ts";
import { openImage } from "../../src/puzzlefs/reader/image.ts";
import { fixtureDir, sha256hex } from "../helpers/oci-fixtures.ts";

describe("oci/source: the local layout as an ImageSource", () => {
  it("names the tag, reads the tagged manifest and hands out verified blobs; the reader opens it like DIR:TAG", async () => {
    const layout = await OciLayout.open(fixtureDir("mixed-noop"));
    const src = localImageSource(layout, "mixed");
    expect([src.location, src.reference, src.label]).toEqual([fixtureDir("mixed-noop"), "mixed", 'tag "mixed"']);
    const m = await src.readManifest();
    expect(sha256hex(m.bytes)).toBe("e5811d7b27845eccc40e9a5e6e501913d70bec8700a7fc3e8854d3a8002ce052");
    const rootHex = m.manifest.layers[0]!.digest.slice(7);
    expect(sha256hex(await src.blobs.get(rootHex))).toBe(rootHex);
    const viaSource = await openImage(src);
    const viaDir = await openImage(fixtureDir("mixed-noop"), "mixed");
    expect([viaSource.dir, viaSource.tag, viaSource.layout]).toEqual([viaDir.dir, viaDir.tag, undefined]);
    expect(viaDir.layout).toBeInstanceOf(OciLayout);
    expect(viaSource.tree.node(7)).toEqual(viaDir.tree.node(7));
    expect(sha256hex(await viaSource.tree.readFile(7, 0, 300000))).toBe(sha256hex(await viaDir.tree.readFile(7, 0, 300000)));
  });
});
