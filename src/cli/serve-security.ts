/**
 * The security options of `puzzlefs serve` (README "TLS and access control"):
 *
 *   --tls off|on|require      STARTTLS refused / offered / required (default off)
 *   --tls-cert F --tls-key F  server certificate and its private key (PEM)
 *   --tls-ca F                CA bundle for client certificates
 *   --tls-verify-peer         clients must present a certificate signed by --tls-ca
 *   --tls-psk F               pre-shared keys (psktool's USERNAME:HEXKEY lines) instead of certificates
 *   --allow EXPORT=CIDR,...   only these client addresses may open EXPORT (repeatable; `*` = every export)
 *   --allow-file F            the same rules, one per line
 *   --deny-as policy|unknown  refused clients get NBD_REP_ERR_POLICY, or ERR_UNKNOWN (hide the export)
 *
 * Checked in two steps before anything is served (STYLE.md §11): the flag
 * combination (validateSecurity, pure), then the files (loadSecurity: they
 * exist, parse, the key belongs to the certificate), each with a how-to-fix hint.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { PfsError } from "../common/errors.ts";
import { ALL_EXPORTS, AccessRules, DenyAs, addAllowFile } from "../nbd/access.ts";
import { TlsMode } from "../nbd/starttls.ts";
import { ServerTls, checkTlsMaterial, parsePskFile } from "../nbd/tls.ts";

export interface SecurityFlags {
  tls?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsVerifyPeer?: boolean;
  tlsPsk?: string;
  allow?: string[];
  allowFile?: string[];
  denyAs?: string;
}

export interface SecurityOptions {
  tls: TlsMode;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsCa: string | undefined;
  tlsVerifyPeer: boolean;
  tlsPsk: string | undefined;
  allow: string[];
  allowFiles: string[];
  denyAs: DenyAs;
}

export interface Security {
  tls: ServerTls | undefined;
  access: AccessRules | undefined;
  denyAs: DenyAs;
}

const TLS_HINT = "e.g. --tls require --tls-cert server-cert.pem --tls-key server-key.pem";

export function registerSecurityOptions(cmd: Command): Command {
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  return cmd
    .option("--tls <mode>", "TLS: off (STARTTLS refused), on (offered), require (nothing without TLS)", "off")
    .option("--tls-cert <file>", "server certificate chain (PEM)")
    .option("--tls-key <file>", "private key of --tls-cert (PEM, unencrypted)")
    .option("--tls-ca <file>", "CA certificates that client certificates must chain to (PEM)")
    .option("--tls-verify-peer", "require a client certificate signed by --tls-ca")
    .option("--tls-psk <file>", "pre-shared keys, USERNAME:HEXKEY per line (psktool), instead of certificates")
    .option("--allow <export=cidr,...>", "only these client addresses may open EXPORT (repeatable; * = every export; unix = unix-socket clients)", collect)
    .option("--allow-file <file>", "access rules, one EXPORT=CIDR,... per line", collect)
    .option("--deny-as <reply>", "answer refused clients with policy (NBD_REP_ERR_POLICY) or unknown (as if the export did not exist)", "policy");
}

/** The flag combination, without touching any file. */
export function validateSecurity(f: SecurityFlags): SecurityOptions {
  const mode = f.tls ?? TlsMode.OFF;
  if (!(Object.values(TlsMode) as string[]).includes(mode)) {
    throw PfsError.usage(`--tls: "${mode}" is not off, on or require`, TLS_HINT);
  }
  const denyAs = f.denyAs ?? DenyAs.POLICY;
  if (!(Object.values(DenyAs) as string[]).includes(denyAs)) throw PfsError.usage(`--deny-as: "${denyAs}" is not policy or unknown`);
  const o: SecurityOptions = {
    tls: mode as TlsMode,
    tlsCert: f.tlsCert,
    tlsKey: f.tlsKey,
    tlsCa: f.tlsCa,
    tlsVerifyPeer: f.tlsVerifyPeer === true,
    tlsPsk: f.tlsPsk,
    allow: f.allow ?? [],
    allowFiles: f.allowFile ?? [],
    denyAs: denyAs as DenyAs,
  };
  const given = (["tlsCert", "tlsKey", "tlsCa", "tlsPsk"] as const).filter((k) => o[k] !== undefined).map(flagName);
  if (o.tlsVerifyPeer) given.push("--tls-verify-peer");
  if (o.tls === TlsMode.OFF) {
    if (given.length > 0) throw PfsError.usage(`${given.join(", ")} given but --tls is off`, "add --tls on or --tls require");
    return o;
  }
  if (o.tlsPsk !== undefined) {
    const clash = given.filter((g) => g !== "--tls-psk");
    if (clash.length > 0) throw PfsError.usage(`--tls-psk cannot be combined with ${clash.join(", ")}`, "use pre-shared keys or certificates, not both");
    return o;
  }
  if (o.tlsCert === undefined || o.tlsKey === undefined) {
    throw PfsError.usage(`--tls ${o.tls} needs --tls-cert and --tls-key (or --tls-psk)`, TLS_HINT);
  }
  if (o.tlsVerifyPeer && o.tlsCa === undefined) throw PfsError.usage("--tls-verify-peer needs --tls-ca", "give the CA that signs client certificates: --tls-ca ca-cert.pem");
  if (o.tlsCa !== undefined && !o.tlsVerifyPeer) throw PfsError.usage("--tls-ca is used only with --tls-verify-peer", "add --tls-verify-peer to require client certificates");
  return o;
}

function flagName(k: string): string {
  return `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

async function readInput(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : String(code ?? e);
    throw PfsError.usage(`${flag} ${file}: ${what}`, `give a readable file to ${flag}`);
  }
}

/** Read and check the files the options name; build the TLS context and the access rules. */
export async function loadSecurity(o: SecurityOptions): Promise<Security> {
  let tls: ServerTls | undefined;
  if (o.tls !== TlsMode.OFF) {
    if (o.tlsPsk !== undefined) {
      const psk = parsePskFile((await readInput(o.tlsPsk, "--tls-psk")).toString("utf8"), o.tlsPsk);
      tls = new ServerTls({ mode: o.tls, psk });
    } else {
      const cert = await readInput(o.tlsCert!, "--tls-cert");
      const key = await readInput(o.tlsKey!, "--tls-key");
      const ca = o.tlsCa === undefined ? undefined : await readInput(o.tlsCa, "--tls-ca");
      checkTlsMaterial({ cert, key, ca }, { cert: `--tls-cert ${o.tlsCert}`, key: `--tls-key ${o.tlsKey}`, ca: `--tls-ca ${o.tlsCa}` });
      tls = new ServerTls({ mode: o.tls, cert, key, ca, verifyPeer: o.tlsVerifyPeer });
    }
  }
  let access: AccessRules | undefined;
  if (o.allow.length > 0 || o.allowFiles.length > 0) {
    access = AccessRules.parse(o.allow, () => "--allow");
    for (const f of o.allowFiles) addAllowFile(access, (await readInput(f, "--allow-file")).toString("utf8"), f);
  }
  return { tls, access, denyAs: o.denyAs };
}

/** Every export a rule names must exist: a typo would otherwise leave the real export open. */
export function checkRuleExports(access: AccessRules | undefined, exports: readonly string[]): void {
  for (const name of access?.exportsNamed() ?? []) {
    if (!exports.includes(name)) {
      throw PfsError.usage(`--allow: there is no export "${name}"`, `rules name one of: ${exports.map((n) => `"${n}"`).join(", ")}, or ${ALL_EXPORTS} for all`);
    }
  }
}
