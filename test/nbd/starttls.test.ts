import { describe, expect, it } from "vitest";
import { TlsMode, tlsGate } from "../../src/nbd/starttls.ts";
import { OPT, REP } from "./helpers/proto.ts";

// proto.md "TLS support": NOTLS, SELECTIVETLS (no TLS-only export) and FORCEDTLS.
const ERR_POLICY = 0x80000002;
const ERR_TLS_REQD = 0x80000005;

describe("tlsGate (the rules as a table)", () => {
  it("gives each mode's answer to STARTTLS, EXPORT_NAME, ABORT and the rest", () => {
    const k = (m: TlsMode, active: boolean, o: number, len = 0) => {
      const g = tlsGate(m, active, o, len);
      return g.kind === "reply" ? g.reply.readUInt32BE(12) : g.kind;
    };
    expect([k("off", false, OPT.STARTTLS), k("on", false, OPT.STARTTLS), k("require", false, OPT.STARTTLS)]).toEqual([ERR_POLICY, "start", "start"]);
    expect([k("on", true, OPT.STARTTLS), k("require", true, OPT.STARTTLS), k("on", false, OPT.STARTTLS, 1)]).toEqual([REP.ERR_INVALID, REP.ERR_INVALID, REP.ERR_INVALID]);
    expect([k("require", false, OPT.EXPORT_NAME), k("require", false, OPT.ABORT), k("require", false, OPT.GO)]).toEqual(["die", "pass", ERR_TLS_REQD]);
    expect([k("require", true, OPT.EXPORT_NAME), k("require", true, OPT.GO), k("on", false, OPT.GO), k("off", false, OPT.GO)]).toEqual(["pass", "pass", "pass", "pass"]);
  });
});
