/**
 * The test guest: Debian's cloud kernel, busybox-static and nbd-client, taken
 * from their .debs (never installed on the host), plus an initramfs built
 * here. Facts from ../shared/integration/qemu-nbd-recipe.md §0:
 * - `linux-image-cloud-amd64` depends on the current ABI package
 *   (linux-image-6.1.0-NN-cloud-amd64); resolve it, the number changes.
 * - The kernel .deb ships no modules.dep: run `depmod -b`, then
 *   `modprobe -d ROOT -S KVER --show-depends MOD` gives the insmod order.
 * - nbd-client is dynamically linked: copy each library ldd names to the same
 *   absolute path in the initramfs (needs libnl-genl-3-200 on the host).
 * - `apt-get download` runs as _apt: the download dir must be writable by it.
 *
 * Everything is cached under .cache/guest/; a second call costs ~0.3 s.
 */
import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { writeNewc, type CpioEntry } from "./cpio.ts";
import { cacheDir, REPO } from "./paths.ts";
import { run } from "./proc.ts";

export interface GuestAssets {
  /** Kernel release, e.g. 6.1.0-56-cloud-amd64. */
  kver: string;
  kernel: string;
  initrd: string;
  /** Module file names in insmod order. */
  modules: string[];
}

/** Modules the guest loads; each pulls in its dependencies (recipe §0 table). */
const GUEST_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "nbd"];
const META_PACKAGE = "linux-image-cloud-amd64";
const INIT_SCRIPT = join(REPO, "integration/guest/init.sh");
const NBDTAB_EXAMPLE = join(REPO, "contrib/nbdtab");

/** contrib/nbdtab as the guest sees it: the server is 10.0.2.100 there (slirp guestfwd). */
export function guestNbdtab(text: string): string {
  return text
    .split("\n")
    .map((l) => (/^\s*(#|$)/.test(l) ? l : l.replace(/^(\s*\S+\s+)\S+/, (_m, dev: string) => dev + "10.0.2.100")))
    .join("\n");
}

async function resolveKernelPackage(debs: string): Promise<string> {
  const r = await run("apt-cache", ["depends", META_PACKAGE], { check: false });
  const m = /Depends: (linux-image-\S+)/.exec(r.stdout);
  if (m) return m[1]!;
  // No apt lists (offline, or lists cleaned): fall back to a kernel we already have.
  const cached = readdirSync(debs).find((f) => /^linux-image-.*-cloud-amd64_.*\.deb$/.test(f));
  if (cached) return cached.split("_")[0]!;
  throw new Error(`cannot resolve ${META_PACKAGE}: run apt-get update (apt-cache said: ${r.stderr.trim()})`);
}

function findDeb(debs: string, pkg: string): string | undefined {
  return readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
}

async function download(debs: string, pkgs: string[]): Promise<void> {
  const missing = pkgs.filter((p) => !findDeb(debs, p));
  if (missing.length === 0) return;
  const r = await run("apt-get", ["download", ...missing], { cwd: debs, check: false });
  if (r.code === 0) return;
  // Stale lists name versions the mirror no longer has: refresh once and retry.
  await run("apt-get", ["update", "-q"]);
  await run("apt-get", ["download", ...missing], { cwd: debs });
}

async function unpack(debs: string, pkg: string): Promise<string> {
  const dest = cacheDir("guest", "root", pkg);
  const stamp = join(dest, ".unpacked");
  if (!existsSync(stamp)) {
    await run("dpkg-deb", ["-x", join(debs, findDeb(debs, pkg)!), dest]);
    writeFileSync(stamp, "");
  }
  return dest;
}

async function moduleOrder(kroot: string, kver: string): Promise<string[]> {
  if (!existsSync(join(kroot, "lib/modules", kver, "modules.dep"))) {
    await run("depmod", ["-b", kroot, kver]);
  }
  const order: string[] = [];
  for (const mod of GUEST_MODULES) {
    const r = await run("modprobe", ["-d", kroot, "-S", kver, "--show-depends", mod]);
    for (const line of r.stdout.split("\n")) {
      const m = /^insmod (\S+)/.exec(line);
      if (m && !order.includes(m[1]!)) order.push(m[1]!);
    }
  }
  return order;
}

/** Shared libraries of an ELF binary, as absolute paths (from the host's ldd). */
async function sharedLibs(binary: string): Promise<string[]> {
  const r = await run("ldd", [binary]);
  if (/not found/.test(r.stdout)) {
    throw new Error(`ldd ${binary}: a library is missing on the host:\n${r.stdout}(install libnl-genl-3-200)`);
  }
  return [...r.stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
}

/**
 * The same guest with extra files (e.g. TLS certificates made by a test): a
 * second newc archive appended to the initramfs, which the kernel unpacks
 * over the first (concatenated archives, as for early microcode). Written
 * into `dir`.
 */
export function withExtraFiles(assets: GuestAssets, files: readonly CpioEntry[], dir: string): GuestAssets {
  const extra = writeNewc(files);
  const base = readFileSync(assets.initrd);
  const digest = createHash("sha256").update(base).update(extra).digest("hex").slice(0, 16);
  const initrd = join(dir, `initrd-extra-${digest}.cpio`);
  if (!existsSync(initrd)) writeFileSync(initrd, Buffer.concat([base, extra]));
  return { ...assets, initrd };
}

/** Download, unpack and assemble everything the guest needs. Idempotent. */
export async function ensureGuestAssets(): Promise<GuestAssets> {
  const debs = cacheDir("guest", "debs");
  chmodSync(debs, 0o777); // apt-get download drops privileges to _apt
  const kpkg = await resolveKernelPackage(debs);
  const kver = kpkg.replace(/^linux-image-/, "");
  await download(debs, [kpkg, "busybox-static", "nbd-client"]);
  const [kroot, bbroot, nbdroot] = await Promise.all(
    [kpkg, "busybox-static", "nbd-client"].map((p) => unpack(debs, p)),
  );

  const modules = await moduleOrder(kroot!, kver);
  const busybox = join(bbroot!, "bin/busybox");
  const nbdClient = join(nbdroot!, "sbin/nbd-client");
  const applets = (await run(busybox, ["--list"])).stdout.split("\n").filter((a) => /^[\w.[-]+$/.test(a));

  const entries: CpioEntry[] = [
    ...["proc", "sys", "dev", "mnt", "tmp", "etc", "sbin"].map((d) => ({ kind: "dir" as const, path: d })),
    { kind: "chr", path: "dev/console", major: 5, minor: 1 },
    { kind: "file", path: "bin/busybox", data: readFileSync(busybox), mode: 0o755 },
    ...applets.filter((a) => a !== "busybox").map((a) => ({ kind: "symlink" as const, path: `bin/${a}`, target: "busybox" })),
    { kind: "file", path: "sbin/nbd-client", data: readFileSync(nbdClient), mode: 0o755 },
    ...(await sharedLibs(nbdClient)).map((l) => ({ kind: "file" as const, path: l, data: readFileSync(l), mode: 0o755 })),
    ...modules.map((m) => ({ kind: "file" as const, path: `lib/modules/${basename(m)}`, data: readFileSync(m) })),
    { kind: "file", path: "etc/modules.order", data: Buffer.from(modules.map((m) => basename(m) + "\n").join("")) },
    { kind: "file", path: "etc/nbdtab", data: Buffer.from(guestNbdtab(readFileSync(NBDTAB_EXAMPLE, "utf8"))) },
    { kind: "file", path: "init", data: readFileSync(INIT_SCRIPT), mode: 0o755 },
  ];
  const cpio = writeNewc(entries);
  const digest = createHash("sha256").update(cpio).digest("hex").slice(0, 16);
  const initrd = join(cacheDir("guest"), `initrd-${kver}-${digest}.cpio`);
  if (!existsSync(initrd)) writeFileSync(initrd, cpio);
  return { kver, kernel: join(kroot!, "boot", `vmlinuz-${kver}`), initrd, modules: modules.map((m) => basename(m)) };
}
