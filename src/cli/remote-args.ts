/**
 * The registry options every image-reading command shares (`oci://…`
 * arguments), parsed and validated in one place:
 *
 *   --registry-auth FILE        credentials ("auths" JSON); default
 *                               REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 *                               ~/.docker/config.json
 *   --registry-ca FILE          PEM CA certificate(s) trusted besides the system's
 *   --insecure-registry [HOST]  plain HTTP: for a loopback registry without a
 *                               value, or for exactly the HOST[:PORT] named
 *   --registry-timeout SECONDS  one blob fetch, retries included (default 30)
 *   --cache-dir DIR             shared blob cache (default $XDG_CACHE_HOME/puzzlefs)
 *   --cache-max SIZE            its size cap, LRU (default 2G; 0 = no disk cache)
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { PfsError } from "../common/errors.ts";
import { loadCredentials } from "../oci/remote/auth.ts";
import { DEFAULT_CACHE_MAX, DiskCache, defaultCacheDir } from "../oci/remote/cache.ts";
import type { RegistryClientOptions } from "../oci/remote/client.ts";
import { isLoopback, parseRemoteRef, type RemoteRef } from "../oci/remote/ref.ts";
import { openRemoteImage, type RemoteImageSource } from "../oci/remote/source.ts";

export interface RegistryCliOptions {
  registryAuth?: string;
  registryCa?: string;
  insecureRegistry?: boolean | string;
  registryTimeout?: string;
  cacheDir?: string;
  cacheMax?: string;
}

/** "2G", "512M", "4096", "64k", "1.5G": bytes (binary units). */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw PfsError.usage(`${what}: "${s}" is not a size`, "write a byte count with an optional K, M, G or T suffix, e.g. 2G");
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()]!;
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) throw PfsError.usage(`${what}: "${s}" is too large`);
  return n;
}

export function addRegistryOptions(cmd: Command, opts: { cache?: boolean } = {}): Command {
  cmd
    .option("--registry-auth <file>", "registry credentials: an \"auths\" JSON file as `skopeo login`/`docker login` write (default: REGISTRY_AUTH_FILE, then ~/.docker/config.json)")
    .option("--registry-ca <file>", "PEM CA certificate(s) to trust for the registry, besides the system's")
    .option("--insecure-registry [host:port]", "use plain HTTP: for a loopback registry (no value), or for the registry HOST:PORT named")
    .option("--registry-timeout <seconds>", "give up on one registry fetch (retries included) after this long; the read fails with an I/O error", "30");
  if (opts.cache !== false) {
    cmd
      .option("--cache-dir <dir>", "directory of the blob cache shared by all puzzlefs processes (default $XDG_CACHE_HOME/puzzlefs or ~/.cache/puzzlefs)")
      .option("--cache-max <size>", "size cap of the blob cache, least recently used blobs go first; 0 disables it", "2G");
  }
  return cmd;
}

/** Client options for `ref` from the command line, validated (nothing is contacted yet). */
export async function registryClientOptions(ref: RemoteRef, o: RegistryCliOptions): Promise<RegistryClientOptions> {
  const named = typeof o.insecureRegistry === "string" ? o.insecureRegistry : undefined;
  let plainHttp = false;
  if (o.insecureRegistry === true) {
    if (!isLoopback(ref.hostname)) {
      throw PfsError.usage(
        `--insecure-registry without a host allows plain HTTP to loopback registries only, and ${ref.host} is not one`,
        `if ${ref.host} really has no TLS, name it: --insecure-registry ${ref.host}`,
      );
    }
    plainHttp = true;
  } else if (named !== undefined) {
    plainHttp = named === ref.host || named === ref.hostname;
  }
  const seconds = Number(o.registryTimeout ?? "30");
  if (!(seconds > 0 && seconds <= 86400)) throw PfsError.usage(`--registry-timeout: "${o.registryTimeout}" is not a number of seconds (0 < s ≤ 86400)`);
  let ca: Uint8Array | undefined;
  if (o.registryCa !== undefined) {
    try {
      ca = await readFile(o.registryCa);
    } catch (e) {
      throw PfsError.io(`--registry-ca ${o.registryCa}`, e);
    }
    if (!Buffer.from(ca).toString("utf8").includes("-----BEGIN CERTIFICATE-----")) {
      throw PfsError.usage(`--registry-ca ${o.registryCa} holds no PEM certificate`, "give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)");
    }
  }
  return {
    credentials: await loadCredentials(ref.host, ref.repo, { file: o.registryAuth }),
    ca,
    plainHttp,
    allowHttp: (u) => isLoopback(u.hostname.replace(/^\[|\]$/g, "")) || (named !== undefined && (u.host === named || u.hostname === named)),
    deadlineMs: seconds * 1000,
  };
}

/** The shared blob cache, or null with `--cache-max 0`. */
export async function openCacheArg(o: RegistryCliOptions): Promise<DiskCache | null> {
  const max = o.cacheMax === undefined ? DEFAULT_CACHE_MAX : parseSize(o.cacheMax, "--cache-max");
  if (max === 0) return null;
  return DiskCache.open(o.cacheDir ?? defaultCacheDir(), max);
}

/** Open `oci://…` (the manifest is fetched and pinned now); `cache` shares one DiskCache between images. */
export async function openRemoteArg(ref: string, o: RegistryCliOptions, cache?: DiskCache | null): Promise<RemoteImageSource> {
  const r = parseRemoteRef(ref);
  const clientOpts = await registryClientOptions(r, o);
  return openRemoteImage(r, { ...clientOpts, cache: cache === undefined ? await openCacheArg(o) : cache });
}
