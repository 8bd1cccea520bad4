/*
 * pfs_native: the few Linux calls Node lacks, for `build` and `extract`.
 *
 *   llistxattr(path)            -> Buffer[]   attribute names, in kernel order
 *   lgetxattr(path, name)       -> Buffer     value (throws ENODATA if absent)
 *   lsetxattr(path, name, val)  -> undefined
 *   mknodat(dirfd, name, mode, major, minor) -> undefined
 *   cdcInit(gear)               gear: 256 u64 LE (FastCDC v2020 table)
 *   cdcCut(buf, start, n, min, avg, max, maskS, maskL) -> [length, hashHi, hashLo]
 *
 * cdcCut is the inner loop of spec §3.3 `cut` (the JS version in
 * src/puzzlefs/builder/fastcdc.ts is the reference; tests compare them).
 *
 * Paths and names are Buffers (raw bytes: non-UTF-8 names work). Symlinks are
 * never followed (the l* calls; mknodat creates, never follows). Errors are
 * thrown as Error objects with `code` = the errno name and `errno`, like
 * Node's own fs errors, so callers can wrap them in PfsError.
 *
 * Built by scripts/build-native.mjs with the system C compiler against Node's
 * headers (N-API 8, no node-gyp needed).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

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

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = cstr(env, argv[0], "path must be a Buffer");
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cdcInit", NULL, js_cdc_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cdcCut", NULL, js_cdc_cut, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
