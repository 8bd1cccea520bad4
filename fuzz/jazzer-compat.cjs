/**
 * Preloaded (`node -r`) by fuzz/run.ts. Jazzer.js 4.0.0 ships its libFuzzer
 * addon prebuilt against glibc 2.38 and libstdc++ 13; Debian 12 has glibc 2.36
 * and libstdc++ 12, so loading it fails with "version `GLIBC_2.38' not found".
 * Only three symbols need the newer versions:
 *   __isoc23_strtol, __isoc23_strtoul (GLIBC_2.38): C23 strtol/strtoul, which
 *     differ from the classic ones only in accepting "0b" prefixes;
 *   std::ios_base_library_init() (GLIBCXX_3.4.32): referenced so the library's
 *     iostream initialisation is linked in; no relocation calls it.
 * When the prebuilt addon fails to load for that reason, this writes a copy to
 * .cache/jazzer/ with those version needs renamed to versions the system has
 * (GLIBC_2.2.5, GLIBCXX_3.4) and the two C23 names pointed at the tails of their
 * own strings ("strtol", "strtoul"), and loads the copy instead. The package in
 * node_modules is never modified.
 */
"use strict";
const Module = require("node:module");
const { createHash } = require("node:crypto");
const { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");

const CACHE = join(__dirname, "..", ".cache", "jazzer");
const RENAME_VERSIONS = { "GLIBC_2.38": "GLIBC_2.2.5", "GLIBCXX_3.4.32": "GLIBCXX_3.4" };
const C23_PREFIX = "__isoc23_";

function elfHash(name) {
  let h = 0;
  for (const c of Buffer.from(name, "latin1")) {
    h = ((h << 4) + c) >>> 0;
    const g = h & 0xf0000000;
    if (g) h ^= g >>> 24;
    h = (h & ~g) >>> 0;
  }
  return h;
}

/** Patch an ELF64 little-endian shared object in memory (see above); returns the number of edits. */
function patchElf(b) {
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new Error("not an ELF64 LE object");
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const sec = (i) => {
    const o = shoff + i * shentsize;
    return { type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)), link: b.readUInt32LE(o + 0x28) };
  };
  const secs = Array.from({ length: shnum }, (_, i) => sec(i));
  const verneed = secs.find((s) => s.type === 0x6ffffffe); // SHT_GNU_verneed
  const dynsym = secs.find((s) => s.type === 11); // SHT_DYNSYM
  if (!verneed || !dynsym) throw new Error("no .gnu.version_r or .dynsym");
  const dynstr = secs[dynsym.link];
  const str = (off) => {
    let e = dynstr.offset + off;
    while (b[e] !== 0) e++;
    return b.toString("latin1", dynstr.offset + off, e);
  };
  let edits = 0;
  const aux = [];
  for (let p = verneed.offset; ; ) {
    const cnt = b.readUInt16LE(p + 2);
    const file = str(b.readUInt32LE(p + 4));
    let a = p + b.readUInt32LE(p + 8);
    for (let i = 0; i < cnt; i++) {
      aux.push({ at: a, file, name: str(b.readUInt32LE(a + 8)), nameOff: b.readUInt32LE(a + 8) });
      const next = b.readUInt32LE(a + 12);
      if (next === 0) break;
      a += next;
    }
    const next = b.readUInt32LE(p + 12);
    if (next === 0) break;
    p += next;
  }
  for (const x of aux) {
    const want = RENAME_VERSIONS[x.name];
    if (!want) continue;
    const to = aux.find((y) => y.file === x.file && y.name === want);
    if (!to) throw new Error(`${x.file}: no ${want} version need to reuse for ${x.name}`);
    b.writeUInt32LE(elfHash(want), x.at); // vna_hash
    b.writeUInt32LE(to.nameOff, x.at + 8); // vna_name
    edits++;
  }
  for (let o = dynsym.offset; o < dynsym.offset + dynsym.size; o += 24) {
    const nameOff = b.readUInt32LE(o);
    if (str(nameOff).startsWith(C23_PREFIX)) {
      b.writeUInt32LE(nameOff + C23_PREFIX.length, o); // st_name → "strtol" / "strtoul"
      edits++;
    }
  }
  return edits;
}

function compatCopy(filename) {
  const orig = readFileSync(filename);
  const out = join(CACHE, `${createHash("sha256").update(orig).digest("hex").slice(0, 16)}-${filename.split("/").pop()}`);
  if (existsSync(out)) return out;
  const b = Buffer.from(orig);
  if (patchElf(b) === 0) return null;
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(`${out}.tmp-${process.pid}`, b);
  renameSync(`${out}.tmp-${process.pid}`, out);
  return out;
}

const load = Module._extensions[".node"];
Module._extensions[".node"] = function (module, filename) {
  try {
    return load.call(this, module, filename);
  } catch (e) {
    const versionMissing = /version `(GLIBC_2\.38|GLIBCXX_3\.4\.32)' not found/.test(String(e && e.message));
    if (!versionMissing || !/@jazzer\.js[\\/]fuzzer/.test(filename)) throw e;
    const copy = compatCopy(filename);
    if (!copy) throw e;
    return load.call(this, module, copy);
  }
};

module.exports = { patchElf };
