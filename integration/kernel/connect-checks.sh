#!/bin/bash
# Runs INSIDE the guest (run-guest.sh): nbdsdk programs serving the kernel's NBD
# driver directly with -c DEVICE (nbdsdk_server_connect_device), no socket and no
# nbd-client between them.
# Usage: connect-checks.sh RAMDISK GZNBD QEMU-LIKE IMAGE.gz IMAGE — the ramdisk,
# gznbd and qemu-like programs, a gzip file and the image it holds.  Prints "ok: ..." per check; exit
# status 1 at the first failure, with "FAIL: ..." saying what happened.
set -uo pipefail
ramdisk=$1 gznbd=$2 qemu_like=$3 gz=$4 image=$5
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
sectors() { cat "/sys/block/$1/size"; }
# gone PID: the process has ended within 20 s.
gone() {
        for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
        return 1
}

# The ramdisk in the background (the default): the command returns once the
# device is connected, with the export's size, writable.
timeout 60 "$ramdisk" -c /dev/nbd0 --pidfile /run/ramdisk.pid 64M 2>/run/ramdisk.log ||
        fail "ramdisk -c /dev/nbd0 exited with $?: $(cat /run/ramdisk.log)"
pid=$(cat /run/ramdisk.pid)
(($(sectors nbd0) == (64 << 20) / 512)) || fail "/dev/nbd0 has $(sectors nbd0) sectors, not 64 MiB's"
[[ $(blockdev --getro /dev/nbd0) == 0 ]] || fail "/dev/nbd0 is read-only"
ok "ramdisk -c /dev/nbd0 returns with the device connected, 64 MiB, writable"

head -c 4M /dev/urandom >/run/data
timeout 120 dd if=/run/data of=/dev/nbd0 bs=1M seek=5 oflag=direct status=none || fail "writing /dev/nbd0"
timeout 120 dd if=/dev/nbd0 of=/run/back bs=1M skip=5 count=4 iflag=direct status=none || fail "reading /dev/nbd0"
cmp -s /run/data /run/back || fail "what was read back from /dev/nbd0 differs from what was written"
ok "4 MiB written and read back with O_DIRECT"

out=$(timeout 60 "$ramdisk" -f -c /dev/nbd0 8M 2>&1) && fail "a second server connected the busy /dev/nbd0"
grep -q "cannot connect /dev/nbd0: it is connected already" <<<"$out" || fail "a busy device: $out"
ok "a busy device is refused: $out"
out=$(timeout 60 "$ramdisk" -f -c /dev/null 8M 2>&1) && fail "-c /dev/null was accepted"
grep -q "cannot connect /dev/null: not an NBD device" <<<"$out" || fail "-c /dev/null: $out"
ok "a device that is not NBD is refused: $out"

timeout 60 nbd-client -d /dev/nbd0 >/dev/null 2>&1 || fail "nbd-client -d /dev/nbd0"
gone "$pid" || fail "the ramdisk still runs after nbd-client -d"
(($(sectors nbd0) == 0)) || fail "/dev/nbd0 still has $(sectors nbd0) sectors after nbd-client -d"
ok "nbd-client -d disconnects the device and the server exits"

# gznbd in the foreground: read-only, the image's data (whole sectors), and
# SIGTERM disconnects the device.
"$gznbd" -f -c /dev/nbd1 "$gz" 2>/run/gznbd.log &
pid=$!
want=$(($(stat -c %s "$image") / 512))
for _ in $(seq 100); do (($(sectors nbd1) == want)) && break; sleep 0.2; done
(($(sectors nbd1) == want)) || fail "/dev/nbd1 has $(sectors nbd1) sectors, not $want: $(cat /run/gznbd.log)"
[[ $(blockdev --getro /dev/nbd1) == 1 ]] || fail "gznbd's /dev/nbd1 is not read-only"
got=$(timeout 120 dd if=/dev/nbd1 bs=512 count="$want" iflag=direct status=none | md5sum)
[[ $got == "$(head -c $((want * 512)) "$image" | md5sum)" ]] || fail "/dev/nbd1 does not hold the image"
timeout 60 dd if=/dev/zero of=/dev/nbd1 bs=4096 count=1 oflag=direct status=none 2>/dev/null &&
        fail "a write to gznbd's read-only /dev/nbd1 succeeded"
ok "gznbd -c /dev/nbd1: read-only, the image's $want sectors"
kill -TERM "$pid"
gone "$pid" || fail "gznbd still runs after SIGTERM"
wait "$pid"
rc=$?
((rc == 0)) || fail "gznbd exited with $rc after SIGTERM: $(cat /run/gznbd.log)"
for _ in $(seq 50); do (($(sectors nbd1) == 0)) && break; sleep 0.2; done
(($(sectors nbd1) == 0)) || fail "/dev/nbd1 still has $(sectors nbd1) sectors after the server stopped"
ok "SIGTERM: gznbd exits 0 and the device is disconnected"

# qemu-like, with qemu-nbd's -c (in the background) and -d: writes through the
# device reach the image file.
truncate -s 16M /run/ql.img
timeout 60 "$qemu_like" -c /dev/nbd2 --pid-file /run/ql.pid /run/ql.img 2>/run/ql.log ||
        fail "qemu-like -c /dev/nbd2 exited with $?: $(cat /run/ql.log)"
pid=$(cat /run/ql.pid)
(($(sectors nbd2) == (16 << 20) / 512)) || fail "qemu-like's /dev/nbd2 has $(sectors nbd2) sectors, not 16 MiB's"
timeout 120 dd if=/run/data of=/dev/nbd2 bs=1M seek=2 oflag=direct status=none || fail "writing /dev/nbd2"
dd if=/run/ql.img of=/run/ql-part bs=1M skip=2 count=4 status=none || fail "reading /run/ql.img"
cmp -s /run/data /run/ql-part || fail "the image file does not hold what was written to /dev/nbd2"
ok "qemu-like -c /dev/nbd2: 4 MiB written through the device are in the image file"
out=$(timeout 60 "$qemu_like" -d /dev/nbd2 2>&1) || fail "qemu-like -d /dev/nbd2: $out"
[[ $out == "/dev/nbd2 disconnected" ]] || fail "qemu-like -d /dev/nbd2 said: $out"
gone "$pid" || fail "qemu-like still serves after qemu-like -d"
(($(sectors nbd2) == 0)) || fail "/dev/nbd2 still has $(sectors nbd2) sectors after qemu-like -d"
ok "qemu-like -d /dev/nbd2 disconnects it and the server exits"
