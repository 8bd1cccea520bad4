#!/bin/sh
# /init of the test guest (busybox sh). Parameters come from the kernel
# command line as lab.NAME=VALUE (see integration/lib/qemu.ts); results go to
# the serial console as machine-readable lines that integration/lib/manifest.ts
# parses:
#   S <dev#> <mode hex> <uid> <gid> <nlink> <major hex> <minor hex> <size> <ino> <path>
#   H <dev#> <sha256>  <path>
#   L <dev#> '<path>' -> '<target>'
#   BEGIN <dev#> <device> / END <dev#> <status>, READY, LAB <note>, K <dmesg line>
#   CAT <sha256> <path> and C <line> (scenario "cat": lab.paths only)
#   RESULT ok | RESULT fail <reason>
# then powers off (QEMU runs with -no-reboot, so it exits 0).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

param() {
  for w in $(cat /proc/cmdline); do
    case "$w" in "lab.$1="*) echo "${w#*=}"; return ;; esac
  done
  echo "$2"
}

finish() {
  echo 4 >/proc/sys/kernel/printk
  if [ "$1" != ok ] || [ "$(param dmesg 0)" = 1 ]; then dmesg | sed 's/^/K /'; fi
  echo "RESULT $*"
  sync
  poweroff -f
}
fail() { finish fail "$*"; }

MODE=$(param mode nbd)
FS=$(param fs ext4)
SCENARIO=$(param scenario verify)

# Modules in dependency order, as computed on the host with modprobe --show-depends.
while read -r m; do
  insmod "/lib/modules/$m" || fail "insmod $m"
done </etc/modules.order

# Attach every device; DEVS collects the block devices to mount.
DEVS=""
if [ "$MODE" = nbd ]; then
  ip link set lo up
  ip link set eth0 up || fail "no eth0"
  ip addr add 10.0.2.15/24 dev eth0
  SERVER=$(param server 10.0.2.100)
  PORT=$(param port 10809)
  OPTS="-R"
  [ -n "$(param bs)" ] && OPTS="$OPTS -b $(param bs)"
  [ -n "$(param conns)" ] && OPTS="$OPTS -C $(param conns)"
  [ -n "$(param timeout)" ] && OPTS="$OPTS -t $(param timeout)"
  [ "$(param persist 0)" = 1 ] && OPTS="$OPTS -p"
  [ "$(param netlink 1)" = 0 ] && OPTS="$OPTS -L"
  # TLS: lab.tlsdir=DIR holds ca-cert.pem (and client-cert.pem, client-key.pem
  # for a client certificate); lab.tlshost=NAME is the name to check the
  # server's certificate against (default: the server address).
  TLSOPTS=""
  TLSDIR=$(param tlsdir)
  if [ -n "$TLSDIR" ]; then
    TLSOPTS="-cacertfile $TLSDIR/ca-cert.pem"
    [ -f "$TLSDIR/client-cert.pem" ] && TLSOPTS="$TLSOPTS -certfile $TLSDIR/client-cert.pem -keyfile $TLSDIR/client-key.pem"
    [ -n "$(param tlshost)" ] && TLSOPTS="$TLSOPTS -tlshostname $(param tlshost)"
    OPTS="$OPTS $TLSOPTS"
  fi
  if [ "$(param list 0)" = 1 ]; then
    nbd-client -l "$SERVER" "$PORT" $TLSOPTS >/tmp/exports || fail "nbd-client -l"
    grep -v -e '^Negotiation' -e '^$' /tmp/exports | sed 's/^/EXPORT /'
  fi
  i=0
  if [ "$(param nbdtab 0)" = 1 ]; then
    # The contrib/nbdtab example, as installed in /etc/nbdtab (host column
    # rewritten to 10.0.2.100): nbd-client takes everything from that line.
    grep -v '^#' /etc/nbdtab | sed 's/^/LAB nbdtab: /'
    nbd-client nbd0 || fail "nbd-client nbd0 (from /etc/nbdtab)"
    DEVS=/dev/nbd0
    i=1
  fi
  for e in $(param exports "" | tr , ' '); do
    echo "LAB nbd-client $SERVER $PORT /dev/nbd$i -N $e $OPTS"
    nbd-client "$SERVER" "$PORT" "/dev/nbd$i" -N "$e" $OPTS || fail "nbd-client /dev/nbd$i -N $e"
    DEVS="$DEVS /dev/nbd$i"
    i=$((i + 1))
  done
else
  n=$(param disks 1)
  for d in a b c d e f g h; do
    [ "$n" -gt 0 ] || break
    t=0
    while [ ! -b "/dev/vd$d" ]; do
      t=$((t + 1))
      [ $t -gt 100 ] && fail "no /dev/vd$d"
      sleep 0.1
    done
    DEVS="$DEVS /dev/vd$d"
    n=$((n - 1))
  done
fi
[ -n "$DEVS" ] || fail "no devices"

# One line per object, batched so that busybox is exec'ed per 64 files, not
# per file (fork+exec costs milliseconds under TCG). Files are hashed by 8
# parallel workers: one reader at a time waits a network round trip per
# request and reads ~2 MB/s through slirp, eight read ~40 MB/s. Each worker
# appends to its own file (lines of parallel writers to one pipe would mix).
report() {
  (
    cd "$2" || exit 1
    find . -exec stat -c "S $1 %f %u %g %h %t %T %s %i %n" {} + || exit 1
    rm -rf /tmp/h && mkdir /tmp/h
    # xargs reads a file, not a pipe: busybox xargs -P takes a read() cut
    # short by SIGCHLD (EINTR) for the end of a name and splits it in two.
    find . -type f -print0 >/tmp/h/files || exit 1
    xargs -0 -r -n 64 -P 8 sh -c 'sha256sum "$@" >>/tmp/h/out.$$' sh </tmp/h/files
    # A read error leaves its file without an H line; the host reports it missing.
    cat /tmp/h/out.* 2>/dev/null | sed "s/^/H $1 /"
    find . -type l -exec stat -c "L $1 %N" {} + || exit 1
  )
}

i=0
for dev in $DEVS; do
  mkdir -p "/mnt/$i"
  mount -t "$FS" -o ro "$dev" "/mnt/$i" || fail "mount $dev"
  echo "LAB mounted $dev $(cat /sys/block/${dev#/dev/}/ro 2>/dev/null) $(cat /sys/block/${dev#/dev/}/size)"
  i=$((i + 1))
done

if [ "$SCENARIO" = cat ]; then
  # Read just the files named in lab.paths (comma-separated, in the first
  # mounted device), print their hash and contents, and stop: the host counts
  # what the server had to fetch for a mount plus these reads (registry laziness).
  for p in $(param paths /etc/os-release | tr , ' '); do
    echo "CAT $(sha256sum "/mnt/0$p" | cut -d' ' -f1) $p" || fail "sha256sum $p"
    sed 's/^/C /' "/mnt/0$p" || fail "cat $p"
  done
  i=0
  for dev in $DEVS; do
    umount "/mnt/$i" || fail "umount $dev"
    case "$dev" in /dev/nbd*) nbd-client -d "$dev" >/dev/null || fail "nbd-client -d $dev" ;; esac
    i=$((i + 1))
  done
  finish ok
fi

if [ "$SCENARIO" = reconnect ]; then
  # Warm up (every file read once), then tell the host to kill the server.
  # The host restarts it after a delay; our reads after `pause` seconds hit
  # the dead connection and must wait for the reconnect. Caches are dropped so
  # that every byte is read again over the new connection.
  find /mnt/0 -type f -exec cat {} + >/dev/null || fail "warm-up read"
  echo READY
  sleep "$(param pause 1)"
  echo 3 >/proc/sys/vm/drop_caches
  echo "LAB caches dropped"
fi

# Keep kernel messages off the console while the report streams (they would
# split lines); they are replayed from dmesg at the end on failure.
echo 1 >/proc/sys/kernel/printk
i=0
for dev in $DEVS; do
  echo "BEGIN $i $dev"
  report "$i" "/mnt/$i"
  echo "END $i $?"
  i=$((i + 1))
done
echo 4 >/proc/sys/kernel/printk

i=0
for dev in $DEVS; do
  umount "/mnt/$i" || fail "umount $dev"
  case "$dev" in /dev/nbd*) nbd-client -d "$dev" >/dev/null || fail "nbd-client -d $dev" ;; esac
  i=$((i + 1))
done
finish ok
