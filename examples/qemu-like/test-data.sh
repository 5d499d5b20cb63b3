#!/bin/bash
# Data reaches the image file: after FLUSH, after a FUA write, after write-zeroes,
# trim and --detect-zeroes; with -o; with direct I/O; a runtime I/O error fails
# only its request.  The file is compared with cmp against the expected image.
# Usage: test-data.sh QEMU-LIKE
set -euo pipefail
ql=$1
py=/usr/bin/python3
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing"; exit 77; }
tmp=$(mktemp -d /dev/shm/qemu-like-data.XXXXXX)
pid=
cleanup() {
	[[ -z $pid ]] || kill "$pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# shellcheck source=serve.bash
source "$(dirname "$0")/serve.bash"
# client SCRIPT: run Python with h connected to the server, IMG and REF the paths
# of the served file and of the expected image (kept up to date by the script).
client() {
	timeout 60 $py - "$tmp/sock" "$tmp/disk.img" "$tmp/ref.img" <<EOF || fail "client checks failed"
import nbd, os, sys
sock, IMG, REF = sys.argv[1:]
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_unix(sock)
def file_at(path, offset, n):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)
def expect(what, ok):
    if not ok:
        sys.exit("FAIL: " + what)
def ref_write(offset, data):
    with open(REF, "r+b") as f:
        f.seek(offset)
        f.write(data)
def extents(offset, n):
    got = []
    h.block_status(n, offset, lambda ctx, off, e, err: got.extend(zip(e[0::2], e[1::2])) or 0)
    return got
$1
h.shutdown()
EOF
}

head -c 8M /dev/urandom >"$tmp/disk.img"
cp "$tmp/disk.img" "$tmp/ref.img"

# Writeback caching: FLUSH and FUA; zero, trim, cache.
serve --discard=unmap "$tmp/disk.img"
client '
a = os.urandom(65536)
h.pwrite(a, 1 << 20)
h.flush()
expect("data written and flushed is in the file", file_at(IMG, 1 << 20, 65536) == a)
ref_write(1 << 20, a)
b = os.urandom(4096)
h.pwrite(b, 2 << 20, nbd.CMD_FLAG_FUA)
expect("a FUA write is in the file", file_at(IMG, 2 << 20, 4096) == b)
ref_write(2 << 20, b)
h.zero(65536, 3 << 20, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_FUA)
expect("fast zero reached the file", file_at(IMG, 3 << 20, 65536) == bytes(65536))
ref_write(3 << 20, bytes(65536))
expect("zeroed range reported as a hole", extents(3 << 20, 65536)[0] == (65536, 3))
h.zero(65536, 5 << 20, nbd.CMD_FLAG_NO_HOLE)
expect("zero with NO_HOLE reached the file", file_at(IMG, 5 << 20, 65536) == bytes(65536))
ref_write(5 << 20, bytes(65536))
h.trim(131072, 4 << 20)
h.flush()
expect("trimmed range reads as zeroes", h.pread(131072, 4 << 20) == bytes(131072))
ref_write(4 << 20, bytes(131072))
expect("trimmed range is a hole", extents(4 << 20, 131072)[0] == (131072, 3))
expect("written range is data", extents(1 << 20, 65536)[0] == (65536, 0))
h.cache(1 << 20, 0)
'
stop
cmp "$tmp/disk.img" "$tmp/ref.img" || fail "the file differs from the expected image"

# -o: the export starts 1 MiB into the file; --detect-zeroes=unmap punches zeroes.
serve -o 1M --discard=unmap --detect-zeroes=unmap "$tmp/disk.img"
client '
expect("size with -o 1M", h.get_size() == 7 << 20)
c = os.urandom(8192)
h.pwrite(c, 0)
h.flush()
expect("-o 1M: export offset 0 is file offset 1M", file_at(IMG, 1 << 20, 8192) == c)
ref_write(1 << 20, c)
h.pwrite(bytes(1 << 20), 5 << 20)
h.flush()
ref_write(6 << 20, bytes(1 << 20))
expect("--detect-zeroes=unmap: a written zero range became a hole", extents(5 << 20, 1 << 20)[0] == (1 << 20, 3))
'
stop
cmp "$tmp/disk.img" "$tmp/ref.img" || fail "the file differs from the expected image after -o"

# Direct I/O: writes go around the page cache; the minimum block size says so.
serve --cache=directsync "$tmp/disk.img"
client '
expect("direct I/O advertises a minimum block size", h.get_block_size(nbd.SIZE_MINIMUM) >= 512)
d = os.urandom(3 * 4096)
h.pwrite(d, 4096 * 7)
expect("a direct write is in the file", file_at(IMG, 4096 * 7, len(d)) == d)
ref_write(4096 * 7, d)
expect("a direct read", h.pread(len(d), 4096 * 7) == d)
'
stop
cmp "$tmp/disk.img" "$tmp/ref.img" || fail "the file differs from the expected image after direct I/O"

# A runtime error fails its request only: shrink the file under the server.
serve "$tmp/disk.img"
client '
os.truncate(IMG, 4 << 20)
try:
    h.pread(4096, 6 << 20)
    expect("a read past the shrunken file fails", False)
except nbd.Error as e:
    expect(f"the read past the shrunken file fails with EIO (got {e.errno})", e.errno == "EIO")
expect("the connection still serves", h.pread(4096, 1 << 20) == file_at(REF, 1 << 20, 4096))
'
stop
echo "ok: qemu-like data path"
