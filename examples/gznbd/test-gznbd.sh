#!/bin/bash
# gznbd against real clients: the data of single- and multi-member gzip files
# (empty members, full flushes, trailing bytes), read whole by nbdcopy (4
# connections) and at random offsets across access points, with and without a
# cache; the zero map in block status; writes refused; NBD_CMD_CACHE; the cache
# kept and its limit; the index kept in a file; damaged, truncated and
# non-gzip files refused with a message; a file changed under the server
# fails the read with EIO and the server goes on; two exports from --config.
# Usage: test-gznbd.sh GZNBD
set -euo pipefail
gznbd=$1
py=/usr/bin/python3
for tool in nbdcopy nbdinfo gzip; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing (libnbd-bin, gzip)"; exit 77; }
done
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing"; exit 77; }
tmp_template=/dev/shm/gznbd-test.XXXXXX
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

# The image: random data, zeroes (whole and partial 4 KiB blocks), text, and
# sparse bytes, 7 bytes short of a sector boundary at the end.
$py - "$tmp/disk.img" <<'PYEOF'
import random, sys
rnd = random.Random(7)
parts = []
for i in range(12):
    kind = i % 4
    if kind == 0:
        parts.append(rnd.randbytes(600 * 1024 + 123))
    elif kind == 1:
        parts.append(bytes(900 * 1024 + 5))
    elif kind == 2:
        parts.append(b"block %d of the gznbd test image\n" % i * 20000)
    else:
        parts.append(bytes(rnd.randrange(256) if rnd.random() < 0.002 else 0 for _ in range(700 * 1024)))
parts.append(b"the end")
open(sys.argv[1], "wb").write(b"".join(parts))
PYEOF
size=$(stat -c %s "$tmp/disk.img")
gzip -c -6 "$tmp/disk.img" >"$tmp/one.gz"
# Three members of unequal size with an empty one between, then trailing zeroes.
part() { dd if="$tmp/disk.img" iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none; }
# The first as pigz writes them: full flushes, and an empty last block, after a
# long run of zeroes (so that a point lies where the member ends).
part 0 1500000 | $py -c 'import sys, zlib
data, z = sys.stdin.buffer.read(), zlib.compressobj(6, zlib.DEFLATED, 31)
sys.stdout.buffer.write(z.compress(data[:700000]) + z.flush(zlib.Z_FULL_FLUSH) +
                        z.compress(data[700000:]) + z.flush(zlib.Z_FULL_FLUSH) + z.flush())' >"$tmp/multi.gz"
: | gzip -c >>"$tmp/multi.gz"
part 1500000 2833333 | gzip -c -9 >>"$tmp/multi.gz"
part 4333333 "$size" | gzip -c -1 >>"$tmp/multi.gz"
head -c 100 /dev/zero >>"$tmp/multi.gz"

# serve FILE SETTINGS...: gznbd in the background on $tmp/sock; its stderr in $tmp/log.
serve() {
	rm -f "$tmp/sock"
	"$gznbd" -f -U "$tmp/sock" "$@" 2>"$tmp/log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		[ -S "$tmp/sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || fail "gznbd $* exited: $(cat "$tmp/log")"
		sleep 0.1
	done
	fail "gznbd $* is not listening after 10 s"
}
stop() {
	kill "$pid"
	wait_exit "$pid"
	[ "$exit_status" = 0 ] || fail "gznbd exited with $exit_status after SIGTERM: $(cat "$tmp/log")"
}
uri="nbd+unix:///?socket=$tmp/sock"

# client [EXPORT]: Python on stdin with h connected, REF the image's bytes.
client() {
	timeout 120 $py - "$tmp/sock" "$tmp/disk.img" "${1:-}" || fail "client checks failed"
}
client_prelude='
import nbd, random, sys
sock, img, name = sys.argv[1:]
REF = open(img, "rb").read()
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.set_export_name(name)
h.connect_unix(sock)
def expect(what, ok):
    if not ok:
        sys.exit("FAIL: " + what)
'

# Whole reads (nbdcopy: 4 connections in parallel, sparse output) and random
# reads, across every kind of file and setting.
for gz in one.gz multi.gz; do
	for settings in "span=32K cache=0" "span=64K cache=1M" ""; do
		# shellcheck disable=SC2086
		serve "$tmp/$gz" $settings
		[ "$(t nbdinfo --size "$uri")" = "$size" ] || fail "$gz $settings: size $(t nbdinfo --size "$uri"), not $size"
		rm -f "$tmp/copy.img"
		t nbdcopy "$uri" "$tmp/copy.img"
		cmp "$tmp/disk.img" "$tmp/copy.img" || fail "$gz $settings: nbdcopy's copy differs from the image"
		client <<PYEOF
$client_prelude
rnd = random.Random(11)
for i in range(300):
    n = rnd.choice([1, 512, 4096, 65536, 300000, 2 << 20])
    off = rnd.randrange(len(REF) - n + 1) if i else len(REF) - n
    expect("read of %d at %d" % (n, off), h.pread(n, off) == REF[off:off + n])
h.shutdown()
PYEOF
		stop
	done
done
grep -q "warning: .*multi.gz: ignoring 100 bytes after the gzip data (from byte" "$tmp/log" ||
	fail "no warning about the trailing bytes: $(cat "$tmp/log")"

# Block status: the 4 KiB blocks that are all zero, and only those, are holes
# that read as zeroes; read-only; writes refused with EPERM; CACHE works.
serve "$tmp/one.gz" span=32K cache=256K
client <<PYEOF
$client_prelude
expect("read-only", h.is_read_only())
expect("can_cache", h.can_cache())
expect("multi-conn", h.can_multi_conn())
want = []
for b in range(0, len(REF), 4096):
    t = 3 if REF[b:b + 4096].count(0) == len(REF[b:b + 4096]) else 0
    if want and want[-1][1] == t:
        want[-1][0] += min(4096, len(REF) - b)
    else:
        want.append([min(4096, len(REF) - b), t])
got, off = [], 0
while off < len(REF):
    seen = []
    h.block_status(len(REF) - off, off, lambda ctx, o, e, err: seen.extend(e) or 0)
    for i in range(0, len(seen), 2):
        if got and got[-1][1] == seen[i + 1]:
            got[-1][0] += seen[i]
        else:
            got.append([seen[i], seen[i + 1]])
        off += seen[i]
expect("block status %s, expected %s" % (got[:8], want[:8]), got == want and any(t == 3 for _, t in want))
for what, call in [("write", lambda: h.pwrite(b"x" * 512, 0)),
                   ("write-zeroes", lambda: h.zero(4096, 0)) if h.can_zero() else ("none", None)]:
    if call:
        try:
            call()
            expect(what + " succeeded on a read-only export", False)
        except nbd.Error as e:
            expect(what + " failed with %s, not EPERM" % e.errno, e.errno == "EPERM")
h.cache(len(REF), 0)
expect("data after CACHE", h.pread(len(REF), 0) == REF)
h.shutdown()
PYEOF
stop

# The cache: a second pass over the image decompresses nothing when the cache
# holds it all, and everything again when it holds less than the image.
decompressed() { # VAR PASSES SETTINGS...: VAR = how many stretches PASSES reads of the whole image decompressed
	local var=$1 passes=$2
	shift 2
	serve "$tmp/one.gz" -v span=32K "$@"
	client <<PYEOF
$client_prelude
for p in range($passes):
    for off in range(0, len(REF), 65536):
        expect("read at %d" % off, h.pread(min(65536, len(REF) - off), off) == REF[off:off + 65536])
h.shutdown()
PYEOF
	stop
	printf -v "$var" %s "$(sed -n 's/.*one.gz: \([0-9]*\) stretches decompressed, [0-9]* reads served by the cache$/\1/p' "$tmp/log")"
}
decompressed once 1 cache=64M
decompressed twice 2 cache=64M
decompressed small 2 cache=256K
echo "stretches decompressed: $once in one pass, $twice in two, $small in two with a small cache"
[ -n "$once" ] && [ "$once" -gt 10 ] || fail "no count of stretches decompressed (or too few): '$once'"
[ "$twice" = "$once" ] || fail "a second pass with the image in the cache decompressed again: $twice, not $once"
[ "$small" -ge $((2 * once)) ] || fail "a cache smaller than the image kept it all: $small decompressions, not >= 2 x $once"

# index=FILE: saved by the first start, read by the next; a damaged,
# truncated or foreign file, another span, or a changed gzip file gets a
# warning and a new index; a place it cannot be saved gets a warning and the
# server serves all the same.
ix=$tmp/one.index
with_index() { # EXPECTED-MESSAGE SETTINGS...: serve, copy the export whole, check the copy and the log
	local want=$1
	shift
	serve "$tmp/one.gz" -v "$@"
	rm -f "$tmp/copy.img"
	t nbdcopy "$uri" "$tmp/copy.img"
	cmp "$tmp/disk.img" "$tmp/copy.img" || fail "with $*: the copy differs from the image"
	stop
	grep -q -- "$want" "$tmp/log" || fail "with $*: no message matching '$want': $(grep -v 'conn ' "$tmp/log")"
}
flip() { # FILE OFFSET: invert one byte
	$py -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
with_index "saved the index in $ix" span=64K index="$ix"
[ -s "$ix" ] || fail "no index file $ix"
with_index "the index read from $ix" span=64K index="$ix"
grep -q "saved the index" "$tmp/log" && fail "the index was saved again although it was read"
flip "$ix" $(($(stat -c %s "$ix") / 2))
with_index "warning: not using the index $ix: its checksum does not match (damaged); indexing again" span=64K index="$ix"
grep -q "saved the index in $ix" "$tmp/log" || fail "the damaged index was not replaced"
with_index "the index read from $ix" span=64K index="$ix"
truncate -s $(($(stat -c %s "$ix") - 5)) "$ix"
with_index "not using the index $ix: it is truncated" span=64K index="$ix"
with_index "not using the index $ix: it was made with other settings (span)" span=32K index="$ix"
touch -d '2001-02-03 04:05:06' "$tmp/one.gz"
with_index "not using the index $ix: the gzip file has changed since (size, time or inode)" span=32K index="$ix"
with_index "the index read from $ix" span=32K index="$ix"
cp "$tmp/disk.img" "$tmp/foreign.index"
with_index "not using the index $tmp/foreign.index: it is not a gznbd index" index="$tmp/foreign.index"
with_index "warning: cannot save the index in $tmp/no/such/dir.index: No such file or directory" \
	index="$tmp/no/such/dir.index"

# Bad files and settings: exit status 1 and a message that says what is wrong.
refused() { # EXPECTED-MESSAGE ARGS...
	local want=$1 rc=0 msg
	shift
	msg=$(timeout 30 "$gznbd" -f -U "$tmp/never.sock" "$@" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "gznbd $* exited with $rc, not 1: $msg"
	grep -q -- "$want" <<<"$msg" || fail "gznbd $*: no message matching '$want': $msg"
	[ ! -e "$tmp/never.sock" ] || fail "gznbd $* listened"
}
cp "$tmp/disk.img" "$tmp/plain.img"
refused "plain.img is not a gzip file" "$tmp/plain.img"
: >"$tmp/empty"
refused "empty is not a gzip file" "$tmp/empty"
refused "cannot open $tmp/missing.gz: No such file or directory" "$tmp/missing.gz"
refused "the gzip file is missing" span=64K
refused "span=1K: expected a size from 32K to 1G" "$tmp/one.gz" span=1K
refused "cache=lots: expected a size" "$tmp/one.gz" cache=lots
head -c $(($(stat -c %s "$tmp/one.gz") / 2)) "$tmp/one.gz" >"$tmp/truncated.gz"
refused "truncated.gz is truncated: the gzip data ends unfinished at byte" "$tmp/truncated.gz"
head -c 8 "$tmp/one.gz" >"$tmp/header-only.gz"
refused "header-only.gz is truncated" "$tmp/header-only.gz"
cp "$tmp/one.gz" "$tmp/damaged.gz"
printf '\x55\xaa\x55\xaa' | dd of="$tmp/damaged.gz" bs=1 seek=200000 conv=notrunc status=none
refused "damaged.gz: corrupt gzip data before byte" "$tmp/damaged.gz"
# The CRC-32 in the trailer: data that inflates but is not what was compressed.
cp "$tmp/one.gz" "$tmp/badcrc.gz"
gzsize=$(stat -c %s "$tmp/one.gz")
printf '\x00\x00\x00\x00' | dd of="$tmp/badcrc.gz" bs=1 seek=$((gzsize - 8)) conv=notrunc status=none
refused "badcrc.gz: corrupt gzip data before byte $((gzsize - 4)): incorrect data check" "$tmp/badcrc.gz"

# A gzip file of nothing is an export of size 0.
: | gzip -c >"$tmp/nothing.gz"
[ "$(timeout 30 "$gznbd" "$tmp/nothing.gz" --run 'nbdinfo --size "$uri"')" = 0 ] ||
	fail "the gzip of nothing is not served as an export of size 0"

# The file changes under the server: the read that needs it fails with EIO and
# a message, zeroes still read, and the server goes on.
cp "$tmp/one.gz" "$tmp/changing.gz"
serve "$tmp/changing.gz" span=32K cache=0
truncate -s 1000 "$tmp/changing.gz"
client <<PYEOF
$client_prelude
try:
    h.pread(4096, len(REF) - 4096)
    expect("a read past the end of the shrunk file succeeded", False)
except nbd.Error as e:
    expect("the read failed with %s, not EIO" % e.errno, e.errno == "EIO")
z = REF.index(bytes(65536))
z = (z + 4095) // 4096 * 4096
expect("zeroes after the failure", h.pread(8192, z) == bytes(8192))
h.shutdown()
PYEOF
[ "$(t nbdinfo --size "$uri")" = "$size" ] || fail "the server did not go on after the failed read"
grep -q "decompressing from byte .* failed: .*has the file changed since it was indexed" "$tmp/log" ||
	fail "no message about the failed decompression: $(cat "$tmp/log")"
stop

# Two exports from a --config file, each its own image and settings.
part 0 300000 >"$tmp/small.img"
gzip -c "$tmp/small.img" >"$tmp/small.gz"
printf '[export big]\nfile = %s\nspan = 32K\n[export small]\nfile = %s\ncache = 0\n' \
	"$tmp/one.gz" "$tmp/small.gz" >"$tmp/two.conf"
serve --config "$tmp/two.conf"
[ "$(t nbdinfo --size "nbd+unix:///big?socket=$tmp/sock")" = "$size" ] || fail "export big: wrong size"
[ "$(t nbdinfo --size "nbd+unix:///small?socket=$tmp/sock")" = 300000 ] || fail "export small: wrong size"
rm -f "$tmp/copy.img"
t nbdcopy "nbd+unix:///small?socket=$tmp/sock" "$tmp/copy.img"
cmp "$tmp/small.img" "$tmp/copy.img" || fail "export small: the copy differs"
stop
echo "ok: gznbd"
