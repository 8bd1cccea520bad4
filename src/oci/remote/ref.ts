/**
 * Image references in a registry: `oci://HOST[:PORT]/REPO:TAG` and
 * `oci://HOST[:PORT]/REPO@sha256:DIGEST` (`REPO:TAG@sha256:…` pins the digest
 * and keeps the tag for messages). The repository and tag grammar is the
 * OCI distribution spec's ("Pulling manifests": `<name>` and `<reference>`);
 * anything else is refused here, before any request is made.
 */
import { isIPv6 } from "node:net";
import { PfsError } from "../../common/errors.ts";

export const SCHEME = "oci://";

export interface RemoteRef {
  /** `host[:port]` as it goes in a URL and in a credentials file (IPv6 in brackets). */
  host: string;
  /** The host name or address alone, no brackets or port. */
  hostname: string;
  port: number | undefined;
  /** Repository name, e.g. `library/debian`. */
  repo: string;
  tag: string | undefined;
  /** Hex sha256 of the manifest when pinned with `@sha256:`. */
  digest: string | undefined;
}

const HINT = "write oci://HOST[:PORT]/REPO:TAG or oci://HOST[:PORT]/REPO@sha256:DIGEST, e.g. oci://127.0.0.1:5000/debian:12";
/** distribution/reference: path components of lowercase alphanumerics joined by '.', '_', '__' or dashes. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

export function isRemoteRef(s: string): boolean {
  return s.startsWith(SCHEME);
}

function bad(s: string, why: string): PfsError {
  return PfsError.usage(`${JSON.stringify(s)} is not a registry image reference: ${why}`, HINT);
}

function parseHost(s: string, host: string): { hostname: string; port: number | undefined } {
  let hostname: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(host);
  if (v6) {
    hostname = v6[1]!;
    portText = v6[2];
    if (!isIPv6(hostname)) throw bad(s, `[${hostname}] is not an IPv6 address`);
  } else {
    const colon = host.lastIndexOf(":");
    hostname = colon < 0 ? host : host.slice(0, colon);
    portText = colon < 0 ? undefined : host.slice(colon + 1);
    if (hostname === "" || !hostname.split(".").every((l) => DNS_LABEL.test(l))) throw bad(s, `${JSON.stringify(hostname)} is not a host name`);
  }
  if (portText === undefined) return { hostname, port: undefined };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw bad(s, `port ${JSON.stringify(portText)} is not 1–65535`);
  return { hostname, port };
}

/**
 * Parse an `oci://` reference. With `tagOptional`, `oci://HOST/REPO` (no tag,
 * no digest) is accepted: `info` lists the tags, `push` reuses the local tag.
 */
export function parseRemoteRef(s: string, opts: { tagOptional?: boolean } = {}): RemoteRef {
  if (!isRemoteRef(s)) throw bad(s, `it does not start with ${SCHEME}`);
  const rest = s.slice(SCHEME.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) throw bad(s, "no repository after the host");
  const host = rest.slice(0, slash);
  const { hostname, port } = parseHost(s, host);
  let path = rest.slice(slash + 1);
  let digest: string | undefined;
  const at = path.indexOf("@");
  if (at >= 0) {
    const d = path.slice(at + 1);
    const m = /^sha256:([0-9a-f]{64})$/.exec(d);
    if (!m) throw bad(s, `${JSON.stringify(d)} is not sha256:<64 lowercase hex digits>`);
    digest = m[1];
    path = path.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = path.lastIndexOf("/");
  const colon = path.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw bad(s, `invalid tag ${JSON.stringify(tag)} (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`);
  }
  if (path === "" || !path.split("/").every((c) => COMPONENT.test(c))) {
    throw bad(s, `invalid repository name ${JSON.stringify(path)} (lowercase letters, digits and separators '.', '_', '-', '/')`);
  }
  if (path.length > 255) throw bad(s, "the repository name is longer than 255 characters");
  if (tag === undefined && digest === undefined && !opts.tagOptional) throw bad(s, "it has neither a :TAG nor an @sha256:DIGEST");
  return { host, hostname, port, repo: path, tag, digest };
}

/** The reference as the user would write it; the digest, when known, wins over the tag. */
export function formatRemoteRef(r: RemoteRef, opts: { digest?: string } = {}): string {
  const digest = opts.digest ?? r.digest;
  return `${SCHEME}${r.host}/${r.repo}${r.tag !== undefined ? `:${r.tag}` : ""}${digest !== undefined ? `@sha256:${digest}` : ""}`;
}

/** Loopback names and addresses: the only places plain HTTP is allowed without naming the host. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
