"""Scripted NBD edge cases with libnbd's Python binding (python3-libnbd).

Run with /usr/bin/python3 (pyenv's python lacks the module):
    /usr/bin/python3 nbdcases.py CASE URI [ARGS...]
Prints one JSON object. The TypeScript tests hold the expectations; this
script only drives libnbd and reports what the server answered.
"""
import hashlib
import json
import sys

import nbd


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def outcome(f):
    """'ok', or the errno name libnbd reports (e.g. 'EINVAL')."""
    try:
        f()
        return "ok"
    except nbd.Error as e:
        return e.errno or ("error: " + (e.string or ""))


def connect(uri, structured=True, meta=True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context("base:allocation")
    h.connect_uri(uri)
    return h


def case_handshake(uri, name):
    """Option mode by hand: LIST, INFO of an unknown and a known export, GO."""
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.set_full_info(True)
    h.connect_uri(uri)
    r = {}
    names = []
    r["list_count"] = h.opt_list(lambda n, d: names.append([n, d]) or 0)
    r["list"] = names
    h.set_export_name("no-such-export")
    r["info_unknown"] = outcome(h.opt_info)
    h.set_export_name(name)
    h.opt_info()
    r["info"] = {
        "size": h.get_size(),
        "canonical": h.get_canonical_export_name(),
        "description": h.get_export_description(),
        "block": [h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED), h.get_block_size(nbd.SIZE_MAXIMUM)],
    }
    ctx = []
    h.opt_list_meta_context(lambda c: ctx.append(c) or 0)
    r["meta_contexts"] = ctx
    h.opt_go()
    r["flags"] = {
        "read_only": h.is_read_only(), "flush": h.can_flush(), "cache": h.can_cache(), "multi_conn": h.can_multi_conn(),
        "df": h.can_df(), "trim": h.can_trim(), "zero": h.can_zero(), "fua": h.can_fua(),
    }
    r["protocol"] = h.get_protocol()
    r["first"] = sha(h.pread(4096, 0))
    h.shutdown()
    # OPT_ABORT from option mode
    h2 = nbd.NBD()
    h2.set_opt_mode(True)
    h2.connect_uri(uri)
    h2.opt_abort()
    r["abort_closed"] = h2.aio_is_closed()
    # a client that does not speak fixed newstyle is refused
    h3 = nbd.NBD()
    h3.set_handshake_flags(0)
    r["non_fixed"] = outcome(lambda: h3.connect_uri(uri))
    return r


def case_commands(uri, structured, size):
    """Every command and error, with structured or simple replies."""
    structured = structured == "1"
    size = int(size)
    h = connect(uri, structured, meta=structured)
    r = {"structured": h.get_structured_replies_negotiated(), "df": h.can_df()}
    r["read"] = sha(h.pread(65536, 0))
    r["tail"] = sha(h.pread(4096, size - 4096))
    h.set_strict_mode(0)
    r["past_end"] = outcome(lambda: h.pread(4096, size - 1024))
    r["after_past_end"] = sha(h.pread(4096, 4096))
    r["beyond"] = outcome(lambda: h.pread(512, size))
    r["zero_length"] = outcome(lambda: h.pread(0, 0))
    r["write"] = outcome(lambda: h.pwrite(b"x" * 4096, 0))
    r["trim"] = outcome(lambda: h.trim(4096, 0))
    r["write_zeroes"] = outcome(lambda: h.zero(4096, 0))
    r["flush"] = outcome(h.flush)
    r["cache"] = outcome(lambda: h.cache(65536, 0))
    r["cache_past_end"] = outcome(lambda: h.cache(65536, size - 4096))
    r["fua_read"] = outcome(lambda: h.pread(512, 0, nbd.CMD_FLAG_FUA))
    r["still_ok"] = sha(h.pread(65536, 0))
    if structured:
        r["df_read"] = sha(h.pread(65536, 0, nbd.CMD_FLAG_DF))
        chunks = []
        h.pread_structured(size, 0, lambda sub, off, st, err: chunks.append([off, len(sub), st]) or 0)
        r["chunks"] = chunks
        ext = []
        h.block_status(size, 0, lambda meta, off, ents, err: ext.append([meta, off, list(ents)]) or 0)
        r["extents"] = ext
        one = []
        h.block_status(size, 0, lambda meta, off, ents, err: one.append(list(ents)) or 0, nbd.CMD_FLAG_REQ_ONE)
        r["req_one"] = one
        r["status_past_end"] = outcome(lambda: h.block_status(8192, size - 4096, lambda *a: 0))
    else:
        r["df_read"] = outcome(lambda: h.pread(512, 0, nbd.CMD_FLAG_DF))
    # Many requests in flight at once; each reply must match its own cookie.
    want = {}
    for i in range(64):
        off = (i * 7919 * 512) % (size - 8192)
        c = h.aio_pread(nbd.Buffer(8192), off)
        want[c] = off
    r["in_flight_max"] = h.aio_in_flight()
    results = {}
    while want:
        h.poll(-1)
        for c in list(want):
            if h.aio_command_completed(c):
                results[want.pop(c)] = "done"
    r["aio_done"] = len(results)
    h.shutdown()
    return r


def case_aio_order(uri, count):
    """Issue reads whose completion the server delays in reverse; record reply order."""
    h = connect(uri, True, meta=False)
    order = []
    cookies = []
    for i in range(int(count)):
        cb = (lambda i: (lambda err: order.append(i) or 0))(i)
        cookies.append(h.aio_pread(nbd.Buffer(4096), i * 4096, completion=cb))
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        h.aio_command_completed(c)
    h.shutdown()
    return {"order": order}


def case_readerr(uri, structured, offset, length):
    """Read [offset, offset+length), which the device fails (DIGEST), then good reads."""
    structured = structured == "1"
    offset, length = int(offset), int(length)
    h = connect(uri, structured, meta=False)
    r = {"bad": outcome(lambda: h.pread(length, offset))}
    if structured:
        chunks = []
        def cb(sub, off, st, err):
            chunks.append([off, len(sub), st, err.value])
            return 0
        r["structured"] = outcome(lambda: h.pread_structured(length, offset, cb))
        r["chunks"] = chunks
    r["good_before"] = sha(h.pread(4096, offset - 4096))
    r["good_after"] = sha(h.pread(4096, offset + length))
    h.shutdown()
    return r


def case_readall(uri, size):
    h = connect(uri, True, meta=False)
    size = int(size)
    m = hashlib.sha256()
    off = 0
    while off < size:
        n = min(1 << 20, size - off)
        m.update(h.pread(n, off))
        off += n
    h.shutdown()
    return {"sha": m.hexdigest()}


def case_tls_plain(uri, name):
    """A client that will not do TLS, in option mode, against a server that requires it."""
    r = {}
    h = nbd.NBD()
    h.set_tls(nbd.TLS_DISABLE)
    h.set_opt_mode(True)
    h.connect_uri(uri)
    names = []
    r["list"] = outcome(lambda: h.opt_list(lambda n, d: names.append(n) or 0))
    r["listed"] = names
    h.set_export_name(name)
    r["info"] = outcome(h.opt_info)
    r["go"] = outcome(h.opt_go)
    r["tls_negotiated"] = h.get_tls_negotiated()
    r["still_negotiating"] = h.aio_is_negotiating()
    return r


def case_tls_state(uri):
    """An nbds:// URI: structured replies, meta context and the export after STARTTLS."""
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)
    h.add_meta_context("base:allocation")
    h.connect_uri(uri)
    r = {
        "tls_negotiated": h.get_tls_negotiated(),
        "structured": h.get_structured_replies_negotiated(),
        "meta": h.can_meta_context("base:allocation"),
        "size": h.get_size(),
        "first": sha(h.pread(65536, 0)),
    }
    h.shutdown()
    return r


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    print(json.dumps(CASES[sys.argv[1]](*sys.argv[2:])))
