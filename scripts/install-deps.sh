#!/usr/bin/env bash
# Install every Debian package the tests, integration suites and benchmarks
# need. Idempotent: does nothing when everything is present. Run as root (or
# with sudo available). Used by scripts/test.sh, hence by .ci/run.
set -euo pipefail

PKGS=(
  capnproto        # capnp convert: oracle for the rootfs codec; capnp-es codegen
  e2fsprogs        # e2fsck, debugfs, dumpe2fs, mke2fs: oracles for the ext image
  time             # /usr/bin/time -f %M: peak RSS of mke2fs in bench/export.ts
  skopeo           # skopeo copy oci:: OCI layout interop
  attr             # getfattr/setfattr: xattr fixtures and comparisons
  zstd             # whole-file decode cross-check of seekable blobs
  fsverity         # fsverity digest: oracle for src/puzzlefs/verity.ts
  nbdkit           # reference NBD server (benchmarks, differential tests)
  libnbd-bin       # nbdinfo, nbdcopy, nbdfuse, nbdsh
  python3-libnbd   # scripted NBD edge cases (/usr/bin/python3 -m nbd)
  qemu-utils       # qemu-img, qemu-io, qemu-nbd
  qemu-system-x86  # guest boots for the kernel NBD client
  fuse3            # nbdfuse
  cpio kmod socat bc libnl-genl-3-200   # initramfs build and guest networking
  erofs-utils      # mkfs.erofs (build benchmark reference)
  gcc libc6-dev    # builds native/pfs_native.c (xattrs on raw-byte paths, mknod, FastCDC loop)
  debootstrap      # Debian minbase corpus
  openssl gnutls-bin   # test certificates (TLS)
  docker-registry  # distribution 2.8: the registry for oci:// integration tests
  apache2-utils    # htpasswd (bcrypt) for the registry's basic auth
)

missing=()
for p in "${PKGS[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
