#!/bin/bash
# with-gzip.sh SIZE PROGRAM ARGS...
# Run PROGRAM ARGS with each word {gzip} replaced by a fresh gzip file whose
# contents are SIZE bytes (a multiple of 2 MiB, suffixes as truncate(1) takes
# them): 1 MiB of random data, 1 MiB of zeroes, and so on.  It is made in
# $TMPDIR, else /tmp (which the kernel group's VM sees), unlinked at once and
# handed over as /proc/self/fd/3, so it goes away with the server; the server
# replaces this script (exec), keeping its PID for whoever signals it.
set -euo pipefail
(($# >= 2)) || { echo "usage: with-gzip.sh SIZE PROGRAM ARGS..." >&2; exit 2; }
size=$(numfmt --from=iec "$1") program=$2
shift 2
file=$(mktemp "${TMPDIR:-/tmp}/gznbd-image.XXXXXX")
for ((i = 0; i < size >> 21; i++)); do
	head -c 1M /dev/urandom
	head -c 1M /dev/zero
done | gzip -1 >"$file"
exec 3<"$file"
rm -f "$file"
args=()
for arg in "$@"; do
	args+=("${arg//\{gzip\}//proc/self/fd/3}")
done
exec "$program" "${args[@]}"
