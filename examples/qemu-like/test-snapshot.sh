#!/bin/bash
# --snapshot on a file system with reflinks: a btrfs image on a loop device.
# Clients see their writes, the original file stays unchanged (while serving
# and after), and the clone leaves no file behind.  Then a block device: the same
# loop device mechanism serves /dev/loopN directly (size, discard, zeroing ioctls).
# Needs root, mkfs.btrfs (btrfs-progs) and loop devices.
# Usage: test-snapshot.sh QEMU-LIKE
set -euo pipefail
ql=$1
py=/usr/bin/python3
((EUID == 0)) || { echo "SKIP: needs root (mount, losetup)"; exit 77; }
command -v mkfs.btrfs >/dev/null || { echo "SKIP: mkfs.btrfs is missing (Debian package btrfs-progs)"; exit 77; }
command -v losetup >/dev/null || { echo "SKIP: losetup is missing (util-linux)"; exit 77; }
[[ -e /dev/loop-control ]] || { echo "SKIP: no loop devices (/dev/loop-control)"; exit 77; }
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing"; exit 77; }
command -v nbdcopy >/dev/null || { echo "SKIP: nbdcopy (libnbd-bin) is missing"; exit 77; }

tmp=$(mktemp -d)
pid='' mounted='' loopdev=''
cleanup() {
	[[ -z $pid ]] || kill "$pid" 2>/dev/null || true
	[[ -z $pid ]] || wait "$pid" 2>/dev/null || true
	[[ -z $mounted ]] || umount "$mounted" || true
	[[ -z $loopdev ]] || losetup -d "$loopdev" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
uri="nbd+unix:///?socket=$tmp/sock"

# shellcheck source=serve.bash
source "$(dirname "$0")/serve.bash"

truncate -s 512M "$tmp/btrfs.img"
mkfs.btrfs -q "$tmp/btrfs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/btrfs.img" "$tmp/mnt"
mounted=$tmp/mnt
head -c 16M /dev/urandom >"$tmp/mnt/disk.img"
cp "$tmp/mnt/disk.img" "$tmp/original.img"
head -c 16M /dev/urandom >"$tmp/new.img"
files_before=$(ls -a "$tmp/mnt")

serve -s "$tmp/mnt/disk.img"
timeout 60 nbdcopy "$tmp/new.img" "$uri"
timeout 60 nbdcopy "$uri" "$tmp/back.img"
cmp "$tmp/new.img" "$tmp/back.img" || fail "--snapshot: the client does not read back what it wrote"
cmp "$tmp/mnt/disk.img" "$tmp/original.img" || fail "--snapshot: writes reached the original while serving"
stop
cmp "$tmp/mnt/disk.img" "$tmp/original.img" || fail "--snapshot: the original changed"
[[ $(ls -a "$tmp/mnt") == "$files_before" ]] || fail "--snapshot left files behind: $(ls -a "$tmp/mnt")"

# A block device: a loop device over a file on the btrfs.
truncate -s 16M "$tmp/mnt/dev.img"
loopdev=$(losetup --find --show "$tmp/mnt/dev.img")
serve --discard=unmap "$loopdev"
[[ $(timeout 30 nbdinfo --size "$uri") == 16777216 ]] || fail "block device size (BLKGETSIZE64)"
timeout 60 $py - "$tmp/sock" <<'EOF' || fail "block device checks"
import nbd, os, sys
h = nbd.NBD()
h.connect_unix(sys.argv[1])
def expect(what, ok):
    if not ok:
        sys.exit("FAIL: " + what)
expect("block device minimum block size is its sector size", h.get_block_size(nbd.SIZE_MINIMUM) == 512)
a = os.urandom(1 << 20)
h.pwrite(a, 0)
h.pwrite(a, 2 << 20, nbd.CMD_FLAG_FUA)
h.flush()
h.zero(65536, 4096, nbd.CMD_FLAG_NO_HOLE)     # BLKZEROOUT
h.trim(65536, (2 << 20) + 8192)               # BLKDISCARD
h.zero(65536, 8 << 20)
h.flush()
expect("zeroed range reads as zeroes", h.pread(65536, 4096) == bytes(65536))
expect("trimmed range reads as zeroes", h.pread(65536, (2 << 20) + 8192) == bytes(65536))
h.shutdown()
EOF
stop
losetup -d "$loopdev"
loopdev=
$py - "$tmp/mnt/dev.img" <<'EOF' || fail "the loop device's file does not hold the expected data"
import sys
d = open(sys.argv[1], "rb").read()
assert d[4096:4096 + 65536] == bytes(65536), "BLKZEROOUT range"
assert d[(2 << 20) + 8192:(2 << 20) + 8192 + 65536] == bytes(65536), "BLKDISCARD range"
assert d[0:4096] != bytes(4096) and d[(2 << 20):(2 << 20) + 8192] != bytes(8192), "written data"
EOF
echo "ok: --snapshot with reflinks, block device"
