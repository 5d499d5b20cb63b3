#!/bin/bash
# The built-in layers from the command line, with real clients: cow=ram|file
# (one overlay for every connection; the map shows what was written),
# stats=FILE (written on SIGUSR1 and at exit), log=FILE (a line as each command
# starts and ends), error-rate= (copies fail, metadata still works).
# Usage: test-builtin-layers.sh RAMDISK
set -euo pipefail
ramdisk=$1
for tool in nbdinfo nbdcopy qemu-io qemu-img; do
        command -v $tool >/dev/null || { echo "SKIP: $tool is missing"; exit 77; }
done
# Debian's python3 has the nbd module; a python3 earlier in PATH may not.
nbdsh() { PATH=/usr/bin:$PATH command nbdsh "$@"; }
nbdsh -c pass 2>/dev/null || { echo "SKIP: nbdsh does not work"; exit 77; }
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

# serve NAME ARGS...: a ramdisk in the background on $tmp/NAME.sock; sets
# $uri and $pid.
serve() {
        local sock=$tmp/$1.sock
        shift
        "$ramdisk" -f -U "$sock" "$@" &
        pid=$!
        pids+=("$pid")
        for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
        [ -S "$sock" ] || fail "ramdisk $* did not start"
        uri="nbd+unix:///?socket=$sock"
}

stop() {
        kill -TERM "$pid"
        wait "$pid" || fail "ramdisk exited with status $? after SIGTERM"
}

# cow: each qemu-io, nbdsh and nbdinfo below is a connection of its own.
for how in ram file; do
        TMPDIR=$tmp serve "cow-$how" 64M "cow=$how"
        t qemu-io -f raw -c 'write -P 0xab 1M 64K' -c 'write -P 0xcd 10M 4K' -c 'write -P 0xef 20M 512' "$uri" >/dev/null
        t qemu-io -f raw -c 'read -P 0xab 1M 64K' -c 'read -P 0xcd 10M 4K' -c 'read -P 0xef 20M 512' \
                -c 'read -P 0 20972032 3584' "$uri" >/dev/null ||
                fail "cow=$how: a second connection does not read the first one's writes"
        nbdsh -u "$uri" -c 'h.zero(4096, 10 * 1024 * 1024)' -c 'h.trim(512, 20 * 1024 * 1024)'
        t qemu-io -f raw -c 'read -P 0 10M 4K' -c 'read -P 0 20M 512' -c 'read -P 0xab 1M 64K' "$uri" >/dev/null ||
                fail "cow=$how: zeroed and trimmed blocks do not read as zeroes"
        map=$(t nbdinfo --map "$uri")
        grep -Eq '^ +1048576 +65536 +0 +data$' <<<"$map" || fail "cow=$how: nbdinfo --map does not show the write: $map"
        grep -Eq '^ +0 +1048576 +3 +hole,zero$' <<<"$map" || fail "cow=$how: nbdinfo --map lost the hole: $map"
        zeroed=$(awk '$1 <= 10485760 && 10485760 < $1 + $2 { print $3 }' <<<"$map")
        [ "$zeroed" = 3 ] || fail "cow=$how: the zeroed block is no hole: $map"
        json=$(t qemu-img map --output=json -f raw "$uri")
        grep -q '"start": 1048576, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true' <<<"$json" ||
                fail "cow=$how: qemu-img map does not show the write: $json"
        # Last: reading untouched ramdisk pages maps them (they then count as data).
        t qemu-io -f raw -c 'read -P 0 0 1M' "$uri" >/dev/null || fail "cow=$how: unwritten blocks do not read as zeroes"
        stop
done

# stats: exact counts from nbdsh, on SIGUSR1 while running and again at exit.
serve stats 64M "stats=$tmp/stats"
nbdsh -u "$uri" -c 'h.pwrite(b"\xab" * 65536, 1048576)' -c 'h.pread(4096, 1048576)' -c 'h.pread(512, 0)' \
        -c 'h.flush()'
[ ! -e "$tmp/stats" ] || fail "stats written before anyone asked"
kill -USR1 "$pid"
for _ in $(seq 100); do [ -s "$tmp/stats" ] && break; sleep 0.05; done
grep -Eq '^read +2 +0 +4608 ' "$tmp/stats" || fail "SIGUSR1: reads wrong: $(cat "$tmp/stats")"
grep -Eq '^write +1 +0 +65536 ' "$tmp/stats" || fail "SIGUSR1: writes wrong: $(cat "$tmp/stats")"
grep -Eq '^flush +1 +0 +0 ' "$tmp/stats" || fail "SIGUSR1: flushes wrong: $(cat "$tmp/stats")"
reads=$(awk '/^latency read:/ { for (i = 3; i <= NF; i++) { split($i, b, ":"); n += b[2] } } END { print n }' "$tmp/stats")
[ "$reads" = 2 ] || fail "SIGUSR1: the read latency histogram holds '$reads' reads: $(cat "$tmp/stats")"
nbdsh -u "$uri" -c 'h.pread(100, 0)' -c 'h.zero(8192, 0)'
stop
grep -Eq '^read +3 +0 +4708 ' "$tmp/stats" || fail "at exit: reads wrong: $(cat "$tmp/stats")"
grep -Eq '^zero +1 +0 +8192 ' "$tmp/stats" || fail "at exit: zeroes wrong: $(cat "$tmp/stats")"

# log: each command's two lines, in the file while the server still runs (nbdsh's
# cookies count from 1); log= sits above error=, so it sees the injected failure.
serve log 64M "log=$tmp/log" error-rate=1 error-commands=trim
nbdsh -u "$uri" -c 'h.pwrite(b"\xab" * 4096, 8192, nbd.CMD_FLAG_FUA)' -c 'h.pread(512, 0)' -c '
try:
    h.trim(4096, 0)
except nbd.Error:
    pass'
for line in 'cookie 1: write offset=8192 count=4096 flags=fua' 'cookie 1: write done in [0-9.]+ us' \
        'cookie 2: read offset=0 count=512 flags=-' 'cookie 2: read done in [0-9.]+ us' \
        'cookie 3: trim offset=0 count=4096 flags=-' \
        'cookie 3: trim failed in [0-9.]+ us: EIO \(Input/output error\)'; do
        grep -Eq "^conn [0-9]+ $line\$" "$tmp/log" || fail "log=: no line '$line': $(cat "$tmp/log")"
done
[ "$(wc -l <"$tmp/log")" = 6 ] || fail "log=: not two lines per command: $(cat "$tmp/log")"
stop

# error: every read fails, so copies fail; writes, the size and the map work.
serve error 64M error-rate=1 error-commands=read
t qemu-io -f raw -c 'write -P 0xab 1M 64K' "$uri" >/dev/null || fail "error-commands=read: a write failed"
set +e
t nbdcopy "$uri" "$tmp/copy.img" 2>"$tmp/err"
rc=$?
set -e
[ $rc -ne 0 ] || fail "nbdcopy succeeded although every read fails"
grep -q 'Input/output error' "$tmp/err" || fail "nbdcopy: no EIO: $(cat "$tmp/err")"
t qemu-img convert -f raw -O raw "$uri" "$tmp/convert.img" 2>/dev/null &&
        fail "qemu-img convert succeeded although every read fails"
[ "$(t nbdinfo --size "$uri")" = 67108864 ] || fail "nbdinfo --size fails under error-commands=read"
t nbdinfo --map "$uri" | grep -Eq '^ +1048576 +65536 +0 +data$' || fail "nbdinfo --map fails under error-commands=read"
stop
echo "ok: built-in layers"
