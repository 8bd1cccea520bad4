/**
 * The TLS rules of option haggling (proto.md "TLS support", "NBD_OPT_STARTTLS"),
 * as one pure function the session asks before it handles an option. The
 * server's mode is fixed for the life of a connection (proto.md: "it MUST be
 * consistent in its mode of operation across the lifespan of a single TCP
 * connection"):
 *
 *   off      NOTLS: STARTTLS gets NBD_REP_ERR_POLICY; TLS_REQD is never sent.
 *   on       SELECTIVETLS with no TLS-only export: STARTTLS is accepted,
 *            every export is also served in clear text.
 *   require  FORCEDTLS: before TLS, every option but STARTTLS and ABORT gets
 *            NBD_REP_ERR_TLS_REQD (INFO, GO, LIST and unknown options
 *            included), and EXPORT_NAME, which cannot return an error, ends
 *            the session. Nothing about an export leaves in clear text.
 *
 * Once TLS is active: STARTTLS again gets NBD_REP_ERR_INVALID, and
 * NBD_REP_ERR_TLS_REQD is never sent ("MUST NOT send ... if TLS has already
 * been initiated").
 */
import { NBD_OPT, NBD_REP, encodeOptionReply } from "./wire.ts";

export const TlsMode = { OFF: "off", ON: "on", REQUIRE: "require" } as const;
export type TlsMode = (typeof TlsMode)[keyof typeof TlsMode];

export type TlsGate =
  /** Not a TLS matter: handle the option as usual. */
  | { kind: "pass" }
  /** Answer with this one reply and stay in option haggling. */
  | { kind: "reply"; reply: Buffer; why: string }
  /** Send the ACK, then upgrade the connection: nothing more is read in clear text. */
  | { kind: "start"; reply: Buffer }
  /** Hard disconnect (EXPORT_NAME before TLS in require mode). */
  | { kind: "die"; why: string };

function reply(option: number, type: number, why: string): TlsGate {
  return { kind: "reply", reply: encodeOptionReply(option, type, Buffer.from(why, "utf8")), why };
}

/**
 * What to do with `option` (carrying `length` bytes of data) given the
 * server's mode and whether this connection already runs TLS.
 */
export function tlsGate(mode: TlsMode, active: boolean, option: number, length: number): TlsGate {
  if (option === NBD_OPT.STARTTLS) {
    if (mode === TlsMode.OFF) return reply(option, NBD_REP.ERR_POLICY, "this server does not offer TLS");
    if (active) return reply(option, NBD_REP.ERR_INVALID, "TLS is already active on this connection");
    // "The client MUST NOT send any additional data with the option."
    if (length !== 0) return reply(option, NBD_REP.ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    return { kind: "start", reply: encodeOptionReply(option, NBD_REP.ACK) };
  }
  if (mode !== TlsMode.REQUIRE || active || option === NBD_OPT.ABORT) return { kind: "pass" };
  if (option === NBD_OPT.EXPORT_NAME) return { kind: "die", why: "NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS; this server requires TLS" };
  return reply(option, NBD_REP.ERR_TLS_REQD, "this server requires TLS: send NBD_OPT_STARTTLS first");
}
