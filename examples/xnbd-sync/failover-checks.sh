#!/bin/bash
# Runs INSIDE the guest (integration/kernel/run-guest.sh): the kernel's NBD
# client on an xnbd-sync primary with one replica; the replica read-only to
# the kernel while it follows; a file system written through the primary,
# which is then killed while the file system is mounted; the kernel's client
# on the replica finds every file synced before the kill, and writes.
# Usage: failover-checks.sh XNBD_SYNC.  Prints "ok: ..." per check; exit
# status 1 at the first failure, with "FAIL: ..." saying what happened.
set -uo pipefail
xs=$1
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
sectors() { cat "/sys/block/$1/size"; }
# listening NAME PID: the server's socket /run/NAME.sock appears within 20 s.
listening() {
	for _ in $(seq 100); do
		[[ -S /run/$1.sock ]] && return 0
		kill -0 "$2" 2>/dev/null || fail "xnbd-sync $1 exited: $(cat "/run/$1.log")"
		sleep 0.2
	done
	fail "xnbd-sync $1 is not listening after 20 s: $(cat "/run/$1.log")"
}

truncate -s 64M /run/a.img /run/b.img
"$xs" -f -U /run/b.sock /run/b.img 2>/run/b.log &
replica=$!
listening b "$replica"
"$xs" -f -U /run/a.sock /run/a.img replica=unix:/run/b.sock 2>/run/a.log &
primary=$!
listening a "$primary"
timeout 120 nbd-client -N '' -unix /run/a.sock /dev/nbd0 -t 60 >/dev/null 2>&1 ||
	fail "nbd-client on the primary: $(cat /run/a.log)"
grep -q "in sync: 0 of 1024 blocks" /run/a.log || fail "the primary's start: $(cat /run/a.log)"
ok "nbd-client on the primary, which has its replica"

timeout 120 nbd-client -N '' -unix /run/b.sock /dev/nbd1 -t 60 >/dev/null 2>&1 || fail "nbd-client on the replica"
[[ $(blockdev --getro /dev/nbd1) == 1 ]] || fail "the following replica is writable to the kernel"
timeout 60 nbd-client -d /dev/nbd1 >/dev/null 2>&1 || fail "nbd-client -d /dev/nbd1"
ok "the replica is read-only to the kernel while it follows"

mkdir -p /run/mnt
timeout 120 mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4 on the primary"
timeout 60 mount -t ext4 /dev/nbd0 /run/mnt || fail "mount"
head -c 8M /dev/urandom >/run/mnt/data
for i in $(seq 50); do seq "$i" 5000 >"/run/mnt/file$i"; done
(cd /run/mnt && md5sum data file*) >/run/sums
sync -f /run/mnt || fail "sync"
kill -KILL "$primary"
wait "$primary" 2>/dev/null
ok "a file system written and synced through the primary; the primary killed while it is mounted"

for _ in $(seq 100); do grep -q "the primary (connection" /run/b.log && break; sleep 0.2; done
grep -q "the primary (connection" /run/b.log || fail "the replica did not see the primary go: $(cat /run/b.log)"
umount -l /run/mnt
timeout 60 nbd-client -d /dev/nbd0 >/dev/null 2>&1
timeout 120 nbd-client -N '' -unix /run/b.sock /dev/nbd1 -t 60 >/dev/null 2>&1 || fail "nbd-client on the replica"
[[ $(blockdev --getro /dev/nbd1) == 0 ]] || fail "the replica is still read-only after the primary's end"
timeout 60 mount -t ext4 /dev/nbd1 /run/mnt || fail "mounting the replica's copy"
(cd /run/mnt && md5sum -c --quiet /run/sums) || fail "the files on the replica differ from those synced"
seq 1 1000 >/run/mnt/after
timeout 60 umount /run/mnt || fail "umount"
timeout 120 fsck.ext4 -f -n /dev/nbd1 >/run/fsck.log 2>&1 || fail "fsck after the failover: $(cat /run/fsck.log)"
timeout 60 nbd-client -d /dev/nbd1 >/dev/null 2>&1 || fail "nbd-client -d /dev/nbd1"
ok "failover: the kernel's client on the replica finds every synced file, writes, and fsck is clean"
kill -TERM "$replica"
wait "$replica" || fail "the replica exited with $? after SIGTERM: $(cat /run/b.log)"
ok "SIGTERM: the replica exits 0"
