/*
 * pfs_native: the few Linux calls Node lacks, for `build` and `extract`.
 *
 *   llistxattr(path)            -> Buffer[]   attribute names, in kernel order
 *   lgetxattr(path, name)       -> Buffer     value (throws ENODATA if absent)
 *   lsetxattr(path, name, val)  -> undefined
 *   mknodat(dirfd, name, mode, major, minor) -> undefined
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mknodat", NULL, js_mknodat, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
