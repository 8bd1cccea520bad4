#!/usr/bin/env node
// Docker HEALTHCHECK for `puzzlefs serve`: healthy when something on
// 127.0.0.1:PORT answers like an NBD server, i.e. its first 8 bytes are the
// fixed-newstyle greeting "NBDMAGIC". Then hang up (the server logs an
// aborted handshake, nothing else). Exit 0 healthy, 1 not.
import net from "node:net";

const port = Number(process.argv[2] ?? 10809);
const sock = net.connect({ host: "127.0.0.1", port });
let got = Buffer.alloc(0);
const done = (ok) => {
  sock.destroy();
  process.exit(ok ? 0 : 1);
};
sock.setTimeout(5000, () => done(false));
sock.on("error", () => done(false));
sock.on("data", (b) => {
  got = Buffer.concat([got, b]);
  if (got.length >= 8) done(got.subarray(0, 8).toString("latin1") === "NBDMAGIC");
});
sock.on("end", () => done(false));
