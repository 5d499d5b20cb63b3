#!/bin/bash
# --snapshot both ways, with real clients (qemu-io, qemu-img, nbdinfo): two
# clients at once read back what they wrote, later connections see it, block status
# shows it, and the image stays unchanged (while serving and after) with no file
# left behind; a read-only image file works; -r -s is a read-only export.
#   tmpfs: no reflinks, so nbdsdk's copy-on-write overlay (cow=file, in $TMPDIR)
#          keeps the writes.
#   btrfs: a btrfs image on a loop device: the backend reports a native snapshot
#          and the first client makes a reflink clone.  Then a block device (a
#          loop device) with -s (the overlay again), and served writable (size,
#          discard, zeroing ioctls).  Needs root, mkfs.btrfs (btrfs-progs), loop
#          devices and python3-libnbd.
# Usage: test-snapshot.sh QEMU-LIKE tmpfs|btrfs
set -euo pipefail
ql=$1 mode=$2
py=/usr/bin/python3
# Debian's clients and python3, not a pyenv's that may come first in PATH.
export PATH=/usr/bin:$PATH
for tool in qemu-io qemu-img nbdinfo; do
	command -v $tool >/dev/null || { echo "SKIP: $tool is missing (qemu-utils, libnbd-bin)"; exit 77; }
done
if [[ $mode == btrfs ]]; then
	((EUID == 0)) || { echo "SKIP: needs root (mount, losetup)"; exit 77; }
	command -v mkfs.btrfs >/dev/null || { echo "SKIP: mkfs.btrfs is missing (Debian package btrfs-progs)"; exit 77; }
	command -v losetup >/dev/null || { echo "SKIP: losetup is missing (util-linux)"; exit 77; }
	[[ -e /dev/loop-control ]] || { echo "SKIP: no loop devices (/dev/loop-control)"; exit 77; }
	$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing"; exit 77; }
elif [[ $mode != tmpfs ]]; then
	echo "usage: test-snapshot.sh QEMU-LIKE tmpfs|btrfs" >&2
	exit 2
fi
# Unprivileged runs prove that a read-only image needs no write permission.
as_user=()
if ((EUID == 0)); then
	command -v setpriv >/dev/null || { echo "SKIP: setpriv (util-linux) is missing"; exit 77; }
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi

# On a tmpfs, which has no reflinks; the unprivileged server makes its socket
# here, its overlay in $TMPDIR, and may clone images in images/.
tmp=$(mktemp -d /dev/shm/qemu-like-snapshot.XXXXXX)
chmod 1777 "$tmp"
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
t() { timeout 60 "$@"; }
uri="nbd+unix:///?socket=$tmp/sock"
mkdir -m 1777 "$tmp/images" "$tmp/overlay"
export TMPDIR=$tmp/overlay

# shellcheck source=serve.bash
source "$(dirname "$0")/serve.bash"
# shellcheck source=../user-copy.bash
source "$(dirname "$0")/../user-copy.bash"
# The server as the unprivileged user: it replaces this script, keeping the PID.
printf '#!/bin/bash\nexec %s %q "$@"\n' "${as_user[*]}" "$(user_copy "$ql" "$tmp/bin")" >"$tmp/ql-as-user"
chmod 755 "$tmp/ql-as-user"

# A 16M image: 8M of random data, then a hole.
make_image() {
	head -c 8M /dev/urandom >"$1"
	truncate -s 16M "$1"
}

# The writes of two clients at once, and their checks: whole and partial blocks
# (1M+512), write-zeroes, and data in the image's hole.
writes_a=(-c 'write -P 0xab 0 1M' -c 'write -P 0xcd 1049088 4096' -c flush)
reads_a=(-c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1049088 4096')
writes_b=(-c 'write -z 4M 1M' -c 'write -P 0xef 12M 64k' -c flush)
reads_b=(-c 'read -P 0 4M 1M' -c 'read -P 0xef 12M 64k')

# check_snapshot IMAGE PATH ARGS...: serve IMAGE with -v -s ARGS..., which must take
# PATH ("reflink clone" or "copy-on-write overlay"), and check it as described above.
check_snapshot() {
	local image=$1 way=$2 sum dir
	shift 2
	sum=$(sha256sum <"$image")
	# The expected state: the same writes on a copy of the image.
	cp "$image" "$tmp/expected.img"
	t qemu-io -f raw "${writes_a[@]}" "${writes_b[@]}" "$tmp/expected.img" >/dev/null
	dir=$(dirname "$image")
	[[ -b $image ]] && dir=$TMPDIR
	local files_before
	files_before=$(ls -a "$dir" "$TMPDIR")

	serve -v -e 0 -s "$@" "$image" 2>"$tmp/log"
	t qemu-io -f raw "${writes_a[@]}" "${reads_a[@]}" "$uri" >"$tmp/a.out" &
	local a=$!
	t qemu-io -f raw "${writes_b[@]}" "${reads_b[@]}" "$uri" >"$tmp/b.out" ||
		fail "$way: a client does not read back what it wrote: $(cat "$tmp/b.out")"
	wait $a || fail "$way: a client does not read back what it wrote: $(cat "$tmp/a.out")"
	t qemu-io -f raw -r "${reads_a[@]}" "${reads_b[@]}" "$uri" >"$tmp/a.out" ||
		fail "$way: a later connection does not see the writes: $(cat "$tmp/a.out")"
	t qemu-img convert -f raw -O raw "$uri" "$tmp/out.img"
	cmp "$tmp/out.img" "$tmp/expected.img" || fail "$way: qemu-img convert out of the export differs"
	t nbdinfo --map "$uri" >"$tmp/map"
	awk '$1 <= 12582912 && 12582912 + 65536 <= $1 + $2 && $4 == "data" { ok = 1 } END { exit !ok }' "$tmp/map" ||
		fail "$way: nbdinfo --map does not show the written data at 12M: $(cat "$tmp/map")"
	if [[ ! -b $image ]]; then
		awk '$1 <= 8388608 && 12582912 <= $1 + $2 && $4 == "hole,zero" { ok = 1 } END { exit !ok }' "$tmp/map" ||
			fail "$way: nbdinfo --map does not show the image's hole at 8M: $(cat "$tmp/map")"
	fi
	[[ $(sha256sum <"$image") == "$sum" ]] || fail "$way: writes reached the image while serving"
	# The writes are kept where the chosen way keeps them: a clone next to the
	# image (the reflink), or the overlay in $TMPDIR.
	local keeper=$TMPDIR
	[[ $way == "reflink clone" ]] && keeper=$(dirname "$image")
	local fd held=''
	for fd in "/proc/$pid/fd/"*; do
		[[ $(readlink "$fd") == "$keeper/#"* ]] && held=yes
	done
	[[ -n $held ]] || fail "$way: the server holds no file in $keeper"
	stop
	grep -q "debug: snapshot: $way" "$tmp/log" || fail "-v does not say 'snapshot: $way': $(grep snapshot "$tmp/log")"
	[[ $(sha256sum <"$image") == "$sum" ]] || fail "$way: the image changed"
	[[ $(ls -a "$dir" "$TMPDIR") == "$files_before" ]] || fail "$way left files behind: $(ls -a "$dir" "$TMPDIR")"
}

# check_read_only DIR PATH: an image file nobody may write in DIR, with -s; and -r -s.
check_read_only() {
	make_image "$1/ro.img"
	chmod 0444 "$1/ro.img"
	ql=$tmp/ql-as-user check_snapshot "$1/ro.img" "$2"
	ql=$tmp/ql-as-user serve -r -s "$1/ro.img"
	[[ $(t nbdinfo --can read-only "$uri"; echo $?) == 0 ]] || fail "-r -s is not a read-only export"
	! t qemu-io -f raw -c 'write 0 4096' "$uri" >/dev/null 2>&1 || fail "-r -s took a write"
	stop
}

if [[ $mode == tmpfs ]]; then
	make_image "$tmp/images/disk.img"
	check_snapshot "$tmp/images/disk.img" "copy-on-write overlay"
	check_snapshot "$tmp/images/disk.img" "copy-on-write overlay" --cache=none
	check_read_only "$tmp/images" "copy-on-write overlay"
	echo "ok: --snapshot without reflinks (copy-on-write overlay)"
	exit 0
fi

truncate -s 512M "$tmp/btrfs.img"
mkfs.btrfs -q "$tmp/btrfs.img"
mkdir "$tmp/mnt"
mount -o loop "$tmp/btrfs.img" "$tmp/mnt"
mounted=$tmp/mnt
chmod 1777 "$tmp/mnt"
make_image "$tmp/mnt/disk.img"
check_snapshot "$tmp/mnt/disk.img" "reflink clone"
check_snapshot "$tmp/mnt/disk.img" "reflink clone" --cache=none
grep -q "debug: snapshot: reflink clone made in $tmp/mnt" "$tmp/log" || fail "the first client made no clone"
check_read_only "$tmp/mnt" "reflink clone"

# A block device: a loop device over a file on the btrfs, with -s (it cannot be
# cloned: the overlay), then writable.
make_image "$tmp/mnt/dev.img"
loopdev=$(losetup --find --show "$tmp/mnt/dev.img")
check_snapshot "$loopdev" "copy-on-write overlay"
serve --discard=unmap "$loopdev"
[[ $(t nbdinfo --size "$uri") == 16777216 ]] || fail "block device size (BLKGETSIZE64)"
t $py - "$tmp/sock" <<'EOF' || fail "block device checks"
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
echo "ok: --snapshot with reflinks, and on a block device; block device ioctls"
