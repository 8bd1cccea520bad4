/**
 * `puzzlefs serve`: NBD exports over TCP or a unix socket.
 *
 *   puzzlefs serve [OCI_DIR] [--tag T ...] [--listen HOST:PORT | --unix PATH]
 *                  [--default-export NAME] [--cache-size 256M] [--max-connections N]
 *                  [--raw NAME=FILE ...] [--tls off|on|require ...] [--allow EXPORT=CIDR,... ...]
 *
 * Every option is parsed and validated before anything listens (STYLE.md §11).
 * The NBD server serves a map name → BlockDevice; this module builds that map:
 * `--raw` files directly, and OCI_DIR's tags through an ImageExportOpener (the
 * PuzzleFS reader + ext synthesizer), which is injected so the CLI does not
 * depend on how images become block devices.
 */
import { lstat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import type { Command } from "commander";
import type { BlockDevice } from "../common/blockdev.ts";
import { ErrorCode, PfsError } from "../common/errors.ts";
import { nameOf } from "../common/names.ts";
import { RawFileDevice } from "../nbd/rawfile.ts";
import { type AccessDeniedInfo, type ConnectionStats, type ListenTarget, NbdServer, type RequestErrorInfo } from "../nbd/server.ts";
import { TlsMode } from "../nbd/starttls.ts";
import { MAX_STRING, NBD_CMD, NBD_E } from "../nbd/wire.ts";
import { addRegistryOptions, type RegistryCliOptions } from "./remote-args.ts";
import { type SecurityFlags, type SecurityOptions, checkRuleExports, loadSecurity, registerSecurityOptions, validateSecurity } from "./serve-security.ts";

/** One export the CLI serves: a device plus what to tell people about it. */
export interface ServedExport {
  device: BlockDevice;
  description: string;
}

/**
 * Opens the tags of an OCI image directory as exports named after the tags
 * (all tags when `tags` is empty). One plan and one chunk cache per export,
 * shared by all its connections; `cacheSize` bytes per export.
 */
export type ImageExportOpener = (
  ociDir: string,
  tags: string[],
  opts: { cacheSize: number; registry?: RegistryCliOptions; prefetch?: string[] | null },
) => Promise<Map<string, ServedExport>>;

export interface ServeDeps {
  openImage?: ImageExportOpener;
}

export interface ServeOptions {
  ociDir: string | undefined;
  tags: string[];
  listen: ListenTarget;
  defaultExport: string | undefined;
  cacheSize: number;
  maxConnections: number;
  raw: { name: string; file: string }[];
  handshakeTimeoutMs: number;
  maxRequests: number;
  maxInflight: number;
  /** `oci://` images: registry access and the shared blob cache. */
  registry: RegistryCliOptions;
  /** `--prefetch`: paths whose files' chunks are fetched in the background; null: off. */
  prefetch: string[] | null;
  security: SecurityOptions;
}

const DEFAULT_PORT = 10809;

/** "256M", "1G", "4096", "64k": bytes (binary units). */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw PfsError.usage(`${what}: "${s}" is not a size`, "write a byte count with an optional K, M, G or T suffix, e.g. 256M");
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()]!;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw PfsError.usage(`${what}: "${s}" is too large`);
  return n;
}

function parsePositiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < 1) throw PfsError.usage(`${what}: "${s}" is not a positive integer`);
  return n;
}

/** "HOST:PORT" or "[V6]:PORT". No default host: listening beyond loopback must be explicit. */
export function parseListen(s: string): ListenTarget {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw PfsError.usage(`--listen: "${s}" is not HOST:PORT`, "e.g. --listen 127.0.0.1:10809, --listen [::1]:10809, or --listen 0.0.0.0:10809 for all interfaces");
  }
  return { host: m[1]!, port };
}

export function parseRaw(s: string): { name: string; file: string } {
  const i = s.indexOf("=");
  if (i <= 0 || i === s.length - 1) throw PfsError.usage(`--raw: "${s}" is not NAME=FILE`, "e.g. --raw disk=./disk.img");
  const name = s.slice(0, i);
  if (Buffer.byteLength(name) > MAX_STRING || name.includes("\0")) throw PfsError.usage(`--raw: export name "${name.slice(0, 40)}…" is too long`);
  return { name, file: s.slice(i + 1) };
}

interface RawFlags extends SecurityFlags, RegistryCliOptions {
  prefetch?: string | boolean;
  tag?: string[];
  listen?: string;
  unix?: string;
  defaultExport?: string;
  cacheSize: string;
  maxConnections: string;
  raw?: string[];
  handshakeTimeout: string;
  maxRequests: string;
  maxInflight: string;
}

export function validate(ociDir: string | undefined, f: RawFlags): ServeOptions {
  if (f.listen !== undefined && f.unix !== undefined) throw PfsError.usage("--listen and --unix are mutually exclusive", "pick one address to serve on");
  const raw = (f.raw ?? []).map(parseRaw);
  const tags = f.tag ?? [];
  if (ociDir === undefined && raw.length === 0) {
    throw PfsError.usage("nothing to serve", "give an OCI image directory, or --raw NAME=FILE");
  }
  if (ociDir === undefined && tags.length > 0) throw PfsError.usage("--tag needs an OCI image directory", "puzzlefs serve OCI_DIR --tag TAG");
  const seen = new Set<string>();
  for (const r of raw) {
    if (seen.has(r.name)) throw PfsError.usage(`--raw: export name "${r.name}" given twice`);
    seen.add(r.name);
  }
  const timeout = Number(f.handshakeTimeout);
  if (!(timeout > 0 && timeout <= 3600)) throw PfsError.usage(`--handshake-timeout: "${f.handshakeTimeout}" is not a number of seconds in (0, 3600]`);
  return {
    ociDir,
    tags,
    listen: f.unix !== undefined ? { path: f.unix } : parseListen(f.listen ?? `127.0.0.1:${DEFAULT_PORT}`),
    defaultExport: f.defaultExport,
    cacheSize: parseSize(f.cacheSize, "--cache-size"),
    maxConnections: parsePositiveInt(f.maxConnections, "--max-connections"),
    raw,
    handshakeTimeoutMs: Math.round(timeout * 1000),
    maxRequests: parsePositiveInt(f.maxRequests, "--max-requests"),
    maxInflight: parseSize(f.maxInflight, "--max-inflight"),
    registry: {
      registryAuth: f.registryAuth,
      registryCa: f.registryCa,
      insecureRegistry: f.insecureRegistry,
      registryTimeout: f.registryTimeout,
      cacheDir: f.cacheDir,
      cacheMax: f.cacheMax,
    },
    prefetch: parsePrefetch(f.prefetch),
    security: validateSecurity(f),
  };
}

/** `--prefetch` alone: /etc and /usr/lib; `--prefetch /a,/b`: those. */
export function parsePrefetch(v: string | boolean | undefined): string[] | null {
  if (v === undefined || v === false) return null;
  if (v === true) return ["/etc", "/usr/lib"];
  const paths = v.split(",").map((p) => p.trim()).filter((p) => p !== "");
  for (const p of paths) if (!p.startsWith("/")) throw PfsError.usage(`--prefetch: "${p}" is not an absolute path in the image`, "e.g. --prefetch /etc,/usr/lib");
  return paths.length ? paths : null;
}

export function registerServe(program: Command, deps: ServeDeps = {}): void {
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  const cmd = program
    .command("serve")
    .description("Serve image tags (as read-only ext4 disks) and raw image files over NBD")
    .argument("[OCI_DIR]", "OCI image layout directory whose tags to serve, or a registry image oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] (fetched lazily)")
    .option("--tag <tag>", "serve only this tag (repeatable); default: every tag", collect)
    .option("--listen <host:port>", `TCP address to listen on (default 127.0.0.1:${DEFAULT_PORT}; 0.0.0.0:PORT for all interfaces)`)
    .option("--unix <path>", "listen on a unix socket instead of TCP")
    .option("--default-export <name>", "export served for the empty name (default: the first)")
    .option("--cache-size <size>", "chunk cache per export", "256M")
    .option("--max-connections <n>", "connections served at once", "256")
    .option("--raw <name=file>", "also serve a raw image file as export NAME (repeatable)", collect)
    .option("--handshake-timeout <seconds>", "drop clients still negotiating after this long", "10")
    .option("--max-requests <n>", "requests in flight per connection", "64")
    .option("--max-inflight <size>", "bytes of replies in flight per connection", "64M")
    .option("--prefetch [paths]", "oci:// images: after start, fetch the chunks of files under these comma-separated paths in the background (default /etc,/usr/lib)");
  addRegistryOptions(registerSecurityOptions(cmd)).action(async (ociDir: string | undefined, flags: RawFlags) => {
    await runServe(validate(ociDir, flags), deps);
  });
}

/** Open every export; on failure close the ones already open. */
async function openExports(o: ServeOptions, deps: ServeDeps): Promise<Map<string, ServedExport>> {
  const out = new Map<string, ServedExport>();
  try {
    if (o.ociDir !== undefined) {
      if (!deps.openImage) {
        throw PfsError.usage(`${o.ociDir}: serving OCI image directories is not available in this build`, "serve image files with --raw NAME=FILE");
      }
      for (const [name, e] of await deps.openImage(o.ociDir, o.tags, { cacheSize: o.cacheSize, registry: o.registry, prefetch: o.prefetch })) out.set(name, e);
    }
    for (const r of o.raw) {
      if (out.has(r.name)) throw PfsError.usage(`--raw: export name "${r.name}" is already a tag of ${o.ociDir}`, "choose another NAME");
      out.set(r.name, { device: await RawFileDevice.open(r.file), description: `raw image ${r.file}` });
    }
    if (out.size === 0) throw PfsError.notFound(`${o.ociDir}: tags to serve`, "tag an image with `puzzlefs build`, or check --tag");
    if (o.defaultExport !== undefined && !out.has(o.defaultExport)) {
      throw PfsError.usage(`--default-export: "${o.defaultExport}" is not an export`, `choose one of: ${[...out.keys()].join(", ")}`);
    }
    return out;
  } catch (e) {
    await closeAll(out);
    throw e;
  }
}

async function closeAll(exports: Map<string, ServedExport>): Promise<void> {
  await Promise.allSettled([...exports.values()].map((e) => e.device.close?.()));
}

/** A unix socket path left behind by a server that died is removed; anything else is refused. */
async function clearStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw PfsError.usage(`--unix: ${path} exists and is not a socket`, "choose another path");
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
  if (live) throw new PfsError(ErrorCode.EXISTS, `--unix: a server is already listening on ${path}`, { hint: "stop it, or choose another path" });
  await unlink(path);
}

const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`);

/** How clients must connect, for the attach lines: TLS mode and credential kind. */
export interface AttachTls {
  mode: TlsMode;
  psk: boolean;
  verifyPeer: boolean;
}

/**
 * The lines printed once the server is ready: how to attach each export.
 * With TLS the URIs are nbds:// (libnbd reads ca-cert.pem, client-cert.pem,
 * client-key.pem from the tls-certificates directory) and nbd-client gets its
 * certificate flags; the file names are placeholders for the client's own.
 */
export function attachInstructions(target: ListenTarget, exports: Map<string, { size: number; description: string }>, defaultExport: string, tls?: AttachTls): string[] {
  const lines: string[] = [];
  const secure = tls !== undefined && tls.mode !== TlsMode.OFF;
  const where = "path" in target ? `unix socket ${target.path}` : `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  const how = !secure ? "" : `; TLS ${tls.mode === TlsMode.REQUIRE ? "required" : "offered"}${tls.psk ? " (pre-shared keys)" : tls.verifyPeer ? " (client certificates required)" : ""}`;
  lines.push(`puzzlefs serve: listening on ${where}; ${exports.size} export${exports.size === 1 ? "" : "s"}, default "${defaultExport}"${how}`);
  const scheme = secure ? "nbds" : "nbd";
  const query = !secure ? "" : tls.psk ? "tls-psk-file=PSKFILE" : "tls-certificates=DIR";
  const user = secure && tls.psk ? "USERNAME@" : "";
  for (const [name, e] of exports) {
    const enc = encodeURIComponent(name);
    const uri =
      "path" in target
        ? `${scheme}+unix:///${enc}?socket=${target.path}${query ? `&${query}` : ""}`
        : `${scheme}://${user}${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}/${enc}${query ? `?${query}` : ""}`;
    const conn = "path" in target ? `-unix ${shq(target.path)}` : `${shq(target.host)} ${target.port}`;
    lines.push(`export "${name}": ${e.size} bytes, ${e.description}`);
    lines.push(`  uri:        ${uri}`);
    if (!secure) {
      lines.push(`  nbd-client: nbd-client ${conn} /dev/nbd0 -N ${shq(name)} -R -b 4096`);
      lines.push(`  qemu:       qemu-system-x86_64 ... -drive ${shq(`file=${uri},format=raw,if=virtio,readonly=on`)}`);
    } else if (!tls.psk) {
      const certs = tls.verifyPeer ? " -certfile client-cert.pem -keyfile client-key.pem" : "";
      lines.push(`  nbd-client: nbd-client ${conn} /dev/nbd0 -N ${shq(name)} -R -b 4096 -cacertfile ca-cert.pem${certs}`);
      // QEMU option values escape a comma by doubling it.
      const q = (v: string | number) => String(v).replaceAll(",", ",,");
      const server = "path" in target ? `server.type=unix,server.path=${q(target.path)}` : `server.type=inet,server.host=${q(target.host)},server.port=${target.port}`;
      const dev = `driver=nbd,node-name=nbd0,${server},export=${q(name)},tls-creds=tls0,read-only=on`;
      lines.push(`  qemu:       qemu-system-x86_64 ... -object tls-creds-x509,id=tls0,dir=DIR,endpoint=client -blockdev ${shq(dev)} -device virtio-blk-pci,drive=nbd0`);
    }
  }
  return lines;
}

function human(n: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) (n /= 1024), i++;
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`;
}

export function connectionLine(s: ConnectionStats): string {
  const secs = ((Date.now() - s.startedAt) / 1000).toFixed(2);
  const exp = s.export === undefined ? "no export" : `export "${s.export}"`;
  const tls = s.tls ? `; ${s.tls.protocol}${s.tls.identity ? ` as ${s.tls.identity}` : ""}` : "";
  return `puzzlefs serve: conn#${s.id} ${s.client} ${exp}: ${s.requests} requests, ${human(s.bytes)} read, ${s.errors} errors, ${secs} s, ${s.hard ? "dropped" : "closed"}: ${s.reason}${tls}`;
}

export function accessDeniedLine(d: AccessDeniedInfo): string {
  return `puzzlefs serve: conn#${d.id} ${d.client}: ${d.option} "${d.export}" refused by the access rules -> ${d.answer}`;
}

export function requestErrorLine(e: RequestErrorInfo): string {
  const msg = e.error instanceof Error ? e.error.message : String(e.error);
  return `puzzlefs serve: conn#${e.id} export "${e.export}": NBD_CMD_${nameOf(NBD_CMD, e.type)} @${e.offset}+${e.length} -> ${nameOf(NBD_E, e.errno)}: ${msg}`;
}

/** Serve until SIGINT/SIGTERM, then finish in-flight replies and return. */
export async function runServe(o: ServeOptions, deps: ServeDeps = {}): Promise<void> {
  // TLS files and access rules first: they are cheap to check, opening images is not.
  const security = await loadSecurity(o.security);
  const exports = await openExports(o, deps);
  const err = (line: string) => process.stderr.write(`${line}\n`);
  let server: NbdServer;
  try {
    checkRuleExports(security.access, [...exports.keys()]);
    server = new NbdServer({
      tls: security.tls,
      access: security.access,
      denyAs: security.denyAs,
      exports,
      defaultExport: o.defaultExport,
      maxConnections: o.maxConnections,
      maxRequestsInFlight: o.maxRequests,
      maxBytesInFlight: o.maxInflight,
      handshakeTimeoutMs: o.handshakeTimeoutMs,
    });
    server.on("connection-end", (s: ConnectionStats) => err(connectionLine(s)));
    server.on("request-error", (e: RequestErrorInfo) => err(requestErrorLine(e)));
    server.on("access-denied", (d: AccessDeniedInfo) => err(accessDeniedLine(d)));
    server.on("connection-refused", (d: { remoteAddress?: string } | undefined) =>
      err(`puzzlefs serve: refused a connection from ${d?.remoteAddress ?? "?"}: --max-connections ${o.maxConnections} reached`),
    );
    server.on("error", (e: Error) => err(`puzzlefs serve: server error: ${e.message}`));
    if ("path" in o.listen) await clearStaleSocket(o.listen.path);
    await server.listen(o.listen);
  } catch (e) {
    await closeAll(exports);
    if (e instanceof PfsError && e.data.errno === "EADDRINUSE") {
      throw new PfsError(ErrorCode.IO, e.message, { hint: "another server is using that address; choose another --listen port" });
    }
    throw e;
  }
  const bound = server.address();
  const target: ListenTarget = typeof bound === "string" ? { path: bound } : { host: (o.listen as { host: string }).host, port: bound.port };
  const info = new Map([...exports].map(([n, e]) => [n, { size: e.device.size, description: e.description }]));
  const tls = security.tls && { mode: security.tls.mode, psk: security.tls.psk, verifyPeer: security.tls.verifyPeer };
  process.stdout.write(`${attachInstructions(target, info, server.opts.defaultExport, tls).join("\n")}\n`);

  let onSignal: (sig: NodeJS.Signals) => void = () => {};
  await new Promise<void>((resolve) => {
    let stopping = false;
    onSignal = (sig) => {
      if (stopping) {
        err(`puzzlefs serve: ${sig} again, exiting without waiting`);
        process.exit(130);
      }
      stopping = true;
      err(`puzzlefs serve: ${sig}: finishing replies on ${server.connectionCount} connection(s), then exiting`);
      void server.close().then(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  await closeAll(exports);
  err("puzzlefs serve: stopped");
}
