/*
 * pfs_native: the few Linux calls Node lacks, for `build` and `extract`.
 *
 *   llistxattr(path)            -> Buffer[]   attribute names, in kernel order
 *   lgetxattr(path, name)       -> Buffer     value (throws ENODATA if absent)
 *   lsetxattr(path, name, val)  -> undefined
 *   mknodat(dirfd, name, mode, major, minor) -> undefined
 *   cdcInit(gear)               gear: 256 u64 LE (FastCDC v2020 table)
 *   cdcCut(buf, start, n, min, avg, max, maskS, maskL) -> [length, hashHi, hashLo]
 *   fsverity(buf)               -> Buffer    32-byte fs-verity digest (spec §3.7)
 *   seekable(buf)               -> Buffer    zstd seekable chunk blob (spec §3.6);
 *                                            only when built with PFS_ZSTD
 *   scandir(dir)                -> {names, keys, num, xattrs}  one directory for
 *                                  the builder's walk (see js_scandir)
 *   readfile(path, dest)        -> number    a whole small file into dest (see js_readfile)
 *
 * cdcCut is the inner loop of spec §3.3 `cut` (the JS version in
 * src/puzzlefs/builder/fastcdc.ts is the reference; tests compare them).
 *
 * Paths and names are Buffers (raw bytes: non-UTF-8 names work). Symlinks are
 * never followed (the l* calls; mknodat creates, never follows). Errors are
 * thrown as Error objects with `code` = the errno name and `errno`, like
 * Node's own fs errors, so callers can wrap them in PfsError.
 *
 * Built on first use by src/puzzlefs/native.ts with the system C
 * compiler against Node's headers (N-API 8, no node-gyp needed); with
 * -DPFS_ZSTD and zstd-napi's zstd.a when that exists.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char code[32];
  const char *name = NULL;
  switch (err) {
#define E(x) case x: name = #x; break;
    E(EPERM) E(ENOENT) E(EIO) E(EBADF) E(ENOMEM) E(EACCES) E(EFAULT) E(EEXIST) E(ENOTDIR)
    E(EINVAL) E(ENOSPC) E(EROFS) E(ERANGE) E(ENODATA) E(ENOTSUP) E(E2BIG) E(ELOOP) E(ENAMETOOLONG)
    E(EDQUOT)
#undef E
    default: break;
  }
  if (name == NULL) {
    snprintf(code, sizeof code, "E%d", err);
    name = code;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(err), syscall);
  napi_value m, c, e, n;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_set_named_property(env, e, "syscall", (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &m), m));
  napi_throw(env, e);
  return NULL;
}

/* Copy a Buffer argument into a NUL-terminated C string; rejects embedded NULs. */
static char *cstr(napi_env env, napi_value v, const char *what) {
  void *data;
  size_t len;
  bool is;
  napi_is_buffer(env, v, &is);
  if (!is || napi_get_buffer_info(env, v, &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  if (memchr(data, 0, len) != NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "argument contains a NUL byte");
    return NULL;
  }
  char *s = malloc(len + 1);
  memcpy(s, data, len);
  s[len] = 0;
  return s;
}

/* The single Buffer argument of a call, as a C string (NULL: a TypeError is pending). */
static char *path_arg(napi_env env, napi_callback_info info, const char *what) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  return cstr(env, argv[0], what);
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value out = NULL;
  char *path = path_arg(env, info, "path must be a Buffer");
  if (!path) return NULL;
  char *buf = NULL;
  ssize_t n;
  /* The list can grow between the two calls: retry on ERANGE. */
  for (;;) {
    n = llistxattr(path, NULL, 0);
    if (n < 0) break;
    free(buf);
    buf = malloc(n > 0 ? (size_t)n : 1);
    n = llistxattr(path, buf, (size_t)n);
    if (n >= 0 || errno != ERANGE) break;
  }
  if (n < 0) {
    int err = errno;
    free(buf);
    free(path);
    /* Filesystems without xattr support have no attributes. */
    if (err == ENOTSUP) return (napi_create_array_with_length(env, 0, &out), out);
    return throw_errno(env, err, "llistxattr");
  }
  napi_create_array(env, &out);
  uint32_t k = 0;
  for (ssize_t i = 0; i < n;) {
    size_t l = strnlen(buf + i, (size_t)(n - i));
    napi_value b;
    void *dst;
    napi_create_buffer_copy(env, l, buf + i, &dst, &b);
    napi_set_element(env, out, k++, b);
    i += (ssize_t)l + 1;
  }
  free(buf);
  free(path);
  return out;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = cstr(env, argv[0], "path must be a Buffer");
  if (!path) return NULL;
  char *name = cstr(env, argv[1], "name must be a Buffer");
  if (!name) return (free(path), NULL);
  char *buf = NULL;
  ssize_t n;
  for (;;) {
    n = lgetxattr(path, name, NULL, 0);
    if (n < 0) break;
    free(buf);
    buf = malloc(n > 0 ? (size_t)n : 1);
    n = lgetxattr(path, name, buf, (size_t)n);
    if (n >= 0 || errno != ERANGE) break;
  }
  int err = errno;
  free(path);
  free(name);
  if (n < 0) {
    free(buf);
    return throw_errno(env, err, "lgetxattr");
  }
  void *dst;
  napi_create_buffer_copy(env, (size_t)n, buf, &dst, &out);
  free(buf);
  return out;
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = cstr(env, argv[0], "path must be a Buffer");
  if (!path) return NULL;
  char *name = cstr(env, argv[1], "name must be a Buffer");
  if (!name) return (free(path), NULL);
  void *val;
  size_t len;
  bool is;
  napi_is_buffer(env, argv[2], &is);
  if (!is) {
    free(path);
    free(name);
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  napi_get_buffer_info(env, argv[2], &val, &len);
  int r = lsetxattr(path, name, val, len, 0);
  int err = errno;
  free(path);
  free(name);
  return r < 0 ? throw_errno(env, err, "lsetxattr") : NULL;
}

static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t dirfd;
  uint32_t mode, major_, minor_;
  if (napi_get_value_int32(env, argv[0], &dirfd) != napi_ok || napi_get_value_uint32(env, argv[2], &mode) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &major_) != napi_ok || napi_get_value_uint32(env, argv[4], &minor_) != napi_ok) {
    napi_throw_type_error(env, NULL, "mknodat(dirfd, name, mode, major, minor): numbers expected");
    return NULL;
  }
  char *name = cstr(env, argv[1], "name must be a Buffer");
  if (!name) return NULL;
  int r = mknodat(dirfd, name, (mode_t)mode, makedev(major_, minor_));
  int err = errno;
  free(name);
  return r < 0 ? throw_errno(env, err, "mknodat") : NULL;
}

static uint64_t gear[256], gear_ls[256];

static napi_value js_cdc_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || len != 256 * 8) {
    napi_throw_type_error(env, NULL, "cdcInit: 2048-byte Buffer expected");
    return NULL;
  }
  for (int i = 0; i < 256; i++) {
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = (v << 8) | ((const uint8_t *)data)[i * 8 + b];
    gear[i] = v;
    gear_ls[i] = v << 1;
  }
  return NULL;
}

static napi_value js_cdc_cut(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type type;
  size_t blen;
  void *data;
  int64_t a[7];
  if (napi_get_typedarray_info(env, argv[0], &type, &blen, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "cdcCut: Uint8Array expected");
    return NULL;
  }
  for (int i = 0; i < 7; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &a[i]) != napi_ok || a[i] < 0) {
      napi_throw_type_error(env, NULL, "cdcCut: non-negative integers expected");
      return NULL;
    }
  }
  size_t start = (size_t)a[0], n = (size_t)a[1], min = (size_t)a[2], avg = (size_t)a[3], max = (size_t)a[4];
  uint64_t mask_s = (uint64_t)a[5], mask_l = (uint64_t)a[6];
  if (start > blen || n > blen - start) {
    napi_throw_range_error(env, NULL, "cdcCut: range outside the buffer");
    return NULL;
  }
  const uint8_t *src = (const uint8_t *)data + start;
  uint64_t h = 0;
  size_t len = n;
  if (n > min) {
    size_t center = avg;
    if (n > max) n = max;
    else if (n < center) center = n;
    size_t i = min / 2;
    len = n;
    for (int pass = 0; pass < 2; pass++) {
      size_t end = pass == 0 ? center / 2 : n / 2;
      uint64_t m = pass == 0 ? mask_s : mask_l, mls = m << 1;
      for (; i < end; i++) {
        size_t k = 2 * i;
        h = (h << 2) + gear_ls[src[k]];
        if ((h & mls) == 0) { len = k; goto done; }
        h = h + gear[src[k + 1]];
        if ((h & m) == 0) { len = k + 1; goto done; }
      }
    }
  }
done:;
  napi_value out, v;
  napi_create_array_with_length(env, 3, &out);
  napi_create_double(env, (double)len, &v);
  napi_set_element(env, out, 0, v);
  napi_create_uint32(env, (uint32_t)(h >> 32), &v);
  napi_set_element(env, out, 1, v);
  napi_create_uint32(env, (uint32_t)h, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

/*
 * fs-verity file digest (SHA-256, 4096-byte blocks, no salt). The hashing is
 * OpenSSL's, from the Node binary itself (it exports libcrypto's symbols for
 * addons; declared here so no OpenSSL headers are needed). One SHA256() call
 * per 4 KiB block is what makes this ~1.5x the JS version, which has to create a
 * Hash object per block (src/puzzlefs/verity.ts is the reference; tests
 * compare both with `fsverity digest`).
 */
extern unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);

#define VBLOCK 4096
#define VHASH 32

static void hash_padded(const uint8_t *src, size_t n, uint8_t *md) {
  if (n == VBLOCK) {
    SHA256(src, VBLOCK, md);
  } else {
    uint8_t tmp[VBLOCK];
    memcpy(tmp, src, n);
    memset(tmp + n, 0, VBLOCK - n);
    SHA256(tmp, VBLOCK, md);
  }
}

/* The single Uint8Array argument of `fn`: 0, or -1 with a TypeError thrown. */
static int u8_arg(napi_env env, napi_callback_info info, const char *fn, void **data, size_t *len) {
  size_t argc = 1;
  napi_value argv[1];
  napi_typedarray_type type;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, len, data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s: Uint8Array expected", fn);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static napi_value js_fsverity(napi_env env, napi_callback_info info) {
  size_t len;
  void *data;
  if (u8_arg(env, info, "fsverity", &data, &len) != 0) return NULL;
  uint8_t root[VHASH] = {0};
  if (len > 0) {
    size_t blocks = (len + VBLOCK - 1) / VBLOCK;
    uint8_t *level = malloc(blocks * VHASH);
    if (!level) {
      napi_throw_error(env, "ENOMEM", "fsverity: out of memory");
      return NULL;
    }
    const uint8_t *src = data;
    for (size_t i = 0; i < blocks; i++) {
      size_t off = i * VBLOCK, n = len - off < VBLOCK ? len - off : VBLOCK;
      hash_padded(src + off, n, level + i * VHASH);
    }
    /* Upper levels in place: block j's hash lands at j*32, before block j's start for j >= 1. */
    size_t n = blocks * VHASH;
    while (n > VHASH) {
      size_t nb = (n + VBLOCK - 1) / VBLOCK;
      for (size_t j = 0; j < nb; j++) {
        uint8_t md[VHASH];
        size_t off = j * VBLOCK, m = n - off < VBLOCK ? n - off : VBLOCK;
        hash_padded(level + off, m, md);
        memcpy(level + j * VHASH, md, VHASH);
      }
      n = nb * VHASH;
    }
    memcpy(root, level, VHASH);
    free(level);
  }
  uint8_t desc[256] = {0};
  desc[0] = 1;  /* version */
  desc[1] = 1;  /* FS_VERITY_HASH_ALG_SHA256 */
  desc[2] = 12; /* log2(4096) */
  uint64_t size = len;
  for (int i = 0; i < 8; i++) desc[8 + i] = (uint8_t)(size >> (8 * i));
  memcpy(desc + 16, root, VHASH);
  void *out;
  napi_value result;
  if (napi_create_buffer(env, VHASH, &out, &result) != napi_ok) return NULL;
  SHA256(desc, sizeof desc, out);
  return result;
}

#ifdef PFS_ZSTD
/*
 * The zstd seekable encoder of src/puzzlefs/compression/seekable-encode.ts
 * (the reference, with the full story of zeekstd 0.5.0's framing and its
 * 131591-byte quirk), in one call instead of four N-API calls per 4 KiB
 * frame. Linked against the libzstd that zstd-napi built (its zstd.a, the
 * same 1.5.7 sources), so the bytes are those of the JS path; tests compare.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define SEEK_FRAME 4096
#define SEEK_LEVEL 3
#define ZEEKSTD_OUT_BUF 131591

/* Per Node environment (main thread, each worker): one compression context
 * and one output buffer, reused from call to call (a fresh malloc of a
 * 256 KiB chunk's output is an mmap and page faults every time). */
struct seek_state {
  ZSTD_CCtx *cctx;
  uint8_t *out;
  size_t cap;
};

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct seek_state *st = data;
  ZSTD_freeCCtx(st->cctx);
  free(st->out);
  free(st);
}

static struct seek_state *env_state(napi_env env) {
  void *d = NULL;
  if (napi_get_instance_data(env, &d) == napi_ok && d) return d;
  struct seek_state *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->cctx = ZSTD_createCCtx();
  if (!st->cctx) return (free(st), NULL);
  ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_compressionLevel, SEEK_LEVEL);
  ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_checksumFlag, 0);
  if (napi_set_instance_data(env, st, free_state, NULL) != napi_ok) {
    ZSTD_freeCCtx(st->cctx);
    free(st);
    return NULL;
  }
  return st;
}

/* ZSTD_e_end with no input until the frame is flushed; returns 0 or a zstd error code. */
static size_t end_frame(ZSTD_CCtx *c, ZSTD_outBuffer *out) {
  ZSTD_inBuffer none = {NULL, 0, 0};
  for (;;) {
    size_t before = out->pos;
    size_t r = ZSTD_compressStream2(c, out, &none, ZSTD_e_end);
    if (ZSTD_isError(r)) return r;
    if (r == 0) return 0;
    if (out->pos == before) return (size_t)-ZSTD_error_dstSize_tooSmall;
  }
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static napi_value js_seekable(napi_env env, napi_callback_info info) {
  size_t len;
  void *data;
  if (u8_arg(env, info, "seekable", &data, &len) != 0) return NULL;
  struct seek_state *st = env_state(env);
  if (!st) {
    napi_throw_error(env, "ENOMEM", "seekable: cannot create a zstd context");
    return NULL;
  }
  ZSTD_CCtx *c = st->cctx;
  size_t frames = len == 0 ? 1 : (len + SEEK_FRAME - 1) / SEEK_FRAME;
  size_t cap = frames * (ZSTD_compressBound(SEEK_FRAME) + 9) + frames * 8 + 17;
  if (st->cap < cap) {
    free(st->out);
    st->out = malloc(cap);
    st->cap = st->out ? cap : 0;
  }
  uint8_t *out = st->out;
  uint32_t *table = malloc(frames * 2 * sizeof(uint32_t));
  if (!out || !table) {
    free(table);
    napi_throw_error(env, "ENOMEM", "seekable: out of memory");
    return NULL;
  }
  const uint8_t *src = data;
  ZSTD_outBuffer ob = {out, cap, 0};
  size_t entries = 0, err = 0;
  ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  for (size_t f = 0; f < frames; f++) {
    size_t off = f * SEEK_FRAME, n = len - off < SEEK_FRAME ? len - off : SEEK_FRAME;
    size_t start = ob.pos;
    ZSTD_inBuffer ib = {src + off, n, 0};
    while (ib.pos < ib.size) {
      size_t r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
      if (ZSTD_isError(r)) { err = r; goto fail; }
    }
    if ((err = end_frame(c, &ob)) != 0) goto fail;
    if (ob.pos % ZEEKSTD_OUT_BUF == 0) {
      /* The quirk: an unrecorded frame end. */
      if (f == frames - 1) break;
      if ((err = end_frame(c, &ob)) != 0) goto fail;
    }
    table[entries * 2] = (uint32_t)(ob.pos - start);
    table[entries * 2 + 1] = (uint32_t)n;
    entries++;
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  }
  ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  uint8_t *p = out + ob.pos;
  put32(p, 0x184D2A5E);
  put32(p + 4, (uint32_t)(entries * 8 + 9));
  p += 8;
  for (size_t i = 0; i < entries * 2; i++, p += 4) put32(p, table[i]);
  put32(p, (uint32_t)entries);
  p[4] = 0;
  put32(p + 5, 0x8F92EAB1);
  p += 9;
  free(table);
  napi_value result;
  void *copy;
  size_t total = (size_t)(p - out);
  if (napi_create_buffer_copy(env, total, out, &copy, &result) != napi_ok) result = NULL;
  return result;
fail:
  ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
  free(table);
  napi_throw_error(env, "EZSTD", ZSTD_getErrorName(err));
  return NULL;
}
#endif

/* ---- the builder's walk and reads: one call per directory, one per small file ---- */

struct dent {
  char *name;
  size_t len;
};

/* Buffer.compare's order: bytes (memcmp), then length. */
static int dent_cmp(const void *a, const void *b) {
  const struct dent *x = a, *y = b;
  int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
  return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

#define SCAN_FIELDS 6

/*
 * scandir(dir: Buffer) -> { names: Buffer[], keys: string[], num: Float64Array, xattrs: Uint8Array }
 * The entries of directory `dir` (no "." and ".."), sorted by raw name bytes,
 * each lstat'ed relative to the directory (fstatat, AT_SYMLINK_NOFOLLOW):
 *   num[6i .. 6i+5] = mode, uid, gid, size, major(rdev), minor(rdev); mode is
 *                     -errno when fstatat failed (the caller reports it);
 *   keys[i]         = "st_dev:st_ino" in decimal;
 *   xattrs[i]       = 0 none, 1 some (the caller reads them), 2 llistxattr
 *                     failed (the caller reads them the slow way, for the error).
 * What it saves over readdir + lstat + llistxattr from JS: per entry, a JS
 * Stats object, a full path walk for the lstat, and the calls themselves.
 */
static napi_value js_scandir(napi_env env, napi_callback_info info) {
  napi_value out = NULL;
  char *dir = path_arg(env, info, "dir must be a Buffer");
  if (!dir) return NULL;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
  if (!d) {
    int err = errno;
    if (dfd >= 0) close(dfd);
    free(dir);
    return throw_errno(env, err, "scandir");
  }
  size_t n = 0, cap = 64;
  struct dent *ents = malloc(cap * sizeof *ents);
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
    if (n == cap) ents = realloc(ents, (cap *= 2) * sizeof *ents);
    size_t l = strlen(e->d_name);
    ents[n].name = malloc(l + 1);
    memcpy(ents[n].name, e->d_name, l + 1);
    ents[n].len = l;
    n++;
  }
  int rerr = errno;
  if (rerr != 0) {
    for (size_t i = 0; i < n; i++) free(ents[i].name);
    free(ents);
    closedir(d);
    free(dir);
    return throw_errno(env, rerr, "scandir");
  }
  qsort(ents, n, sizeof *ents, dent_cmp);

  napi_value names, keys, numBuf, num, xaBuf, xa;
  double *nums;
  uint8_t *xas;
  napi_create_array_with_length(env, n, &names);
  napi_create_array_with_length(env, n, &keys);
  napi_create_arraybuffer(env, n * SCAN_FIELDS * sizeof(double) + 1, (void **)&nums, &numBuf);
  napi_create_typedarray(env, napi_float64_array, n * SCAN_FIELDS, numBuf, 0, &num);
  napi_create_arraybuffer(env, n + 1, (void **)&xas, &xaBuf);
  napi_create_typedarray(env, napi_uint8_array, n, xaBuf, 0, &xa);
  size_t dlen = strlen(dir);
  char *path = malloc(dlen + 2 + 256);
  memcpy(path, dir, dlen);
  path[dlen] = '/';
  char list[1024];
  for (size_t i = 0; i < n; i++) {
    napi_value b, k;
    void *dst;
    napi_create_buffer_copy(env, ents[i].len, ents[i].name, &dst, &b);
    napi_set_element(env, names, (uint32_t)i, b);
    struct stat st;
    double *f = nums + i * SCAN_FIELDS;
    if (fstatat(dfd, ents[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      f[0] = -(double)errno;
      f[1] = f[2] = f[3] = f[4] = f[5] = 0;
      xas[i] = 0;
      napi_get_undefined(env, &k);
      napi_set_element(env, keys, (uint32_t)i, k);
      continue;
    }
    f[0] = st.st_mode;
    f[1] = st.st_uid;
    f[2] = st.st_gid;
    f[3] = (double)st.st_size;
    f[4] = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? major(st.st_rdev) : 0;
    f[5] = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? minor(st.st_rdev) : 0;
    char key[48];
    int kl = snprintf(key, sizeof key, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    napi_create_string_latin1(env, key, (size_t)kl, &k);
    napi_set_element(env, keys, (uint32_t)i, k);
    memcpy(path + dlen + 1, ents[i].name, ents[i].len + 1);
    ssize_t xl = llistxattr(path, list, sizeof list);
    xas[i] = xl == 0 ? 0 : xl > 0 ? 1 : errno == ENOTSUP ? 0 : errno == ERANGE ? 1 : 2;
  }
  for (size_t i = 0; i < n; i++) free(ents[i].name);
  free(ents);
  free(path);
  closedir(d);
  free(dir);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "names", names);
  napi_set_named_property(env, out, "keys", keys);
  napi_set_named_property(env, out, "num", num);
  napi_set_named_property(env, out, "xattrs", xa);
  return out;
}

/*
 * readfile(path: Buffer, dest: Uint8Array) -> number
 * Open `path` (O_NOFOLLOW: a symlink is not followed; O_NONBLOCK: a fifo does
 * not hang), check it is a regular file (else -1), read until end of file or
 * until dest is full, close; the byte count read. The caller passes a dest one
 * byte longer than the file should be, so a file that grew fills it. Errors
 * are thrown with syscall "open", "fstat" or "read".
 */
static napi_value js_readfile(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (argc < 2 || napi_get_typedarray_info(env, argv[1], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "readfile: dest must be a Uint8Array");
    return NULL;
  }
  char *path = cstr(env, argv[0], "path must be a Buffer");
  if (!path) return NULL;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  free(path);
  if (fd < 0) return throw_errno(env, errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    napi_create_double(env, -1, &out);
    return out;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t r = read(fd, (char *)data + done, len - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return throw_errno(env, err, "read");
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  close(fd);
  napi_create_double(env, (double)done, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cdcInit", NULL, js_cdc_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cdcCut", NULL, js_cdc_cut, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsverity", NULL, js_fsverity, NULL, NULL, NULL, napi_enumerable, NULL},
      {"scandir", NULL, js_scandir, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readfile", NULL, js_readfile, NULL, NULL, NULL, napi_enumerable, NULL},
#ifdef PFS_ZSTD
      {"seekable", NULL, js_seekable, NULL, NULL, NULL, napi_enumerable, NULL},
#endif
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
