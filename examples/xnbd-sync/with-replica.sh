#!/bin/bash
# with-replica.sh [OPTIONS] SIZE XNBD_SYNC ARGS...
# Run the primary XNBD_SYNC OPTIONS ARGS with {image} replaced by a fresh
# image of SIZE bytes of random data (suffixes as numfmt --from=iec takes
# them) and {replica} by the address of a second XNBD_SYNC, started here on
# an image of zeroes.  OPTIONS are the words before SIZE that start with "-"
# (the kernel group inserts -r there for its read-only server).  When the primary ends (SIGTERM and SIGINT are passed
# on), the replica is stopped and the two images compared: this script exits
# with the primary's status, or 1 if the replica's image differs.  The images
# are made in $TMPDIR, else /tmp.
set -euo pipefail
options=()
while [[ ${1:-} == -* ]]; do
	options+=("$1")
	shift
done
(($# >= 2)) || { echo "usage: with-replica.sh [OPTIONS] SIZE XNBD_SYNC ARGS..." >&2; exit 2; }
size=$(numfmt --from=iec "$1") xs=$2
shift 2
dir=$(mktemp -d "${TMPDIR:-/tmp}/xnbd-sync.XXXXXX")
trap 'rm -rf "$dir"' EXIT
head -c "$size" /dev/urandom >"$dir/primary.img"
truncate -s "$size" "$dir/replica.img"
"$xs" -f -U "$dir/replica.sock" "$dir/replica.img" 2>"$dir/replica.log" &
replica=$!
for _ in $(seq 100); do
	[[ -S $dir/replica.sock ]] && break
	sleep 0.1
done
args=("${options[@]}")
for arg in "$@"; do
	arg=${arg//\{image\}/$dir/primary.img}
	args+=("${arg//\{replica\}/unix:$dir/replica.sock}")
done
"$xs" "${args[@]}" &
primary=$!
trap 'kill -TERM "$primary"' TERM
trap 'kill -INT "$primary"' INT
status=0
# A signal passed on interrupts the wait: wait again for the exit status.
while kill -0 "$primary" 2>/dev/null; do
	wait "$primary" && status=0 || status=$?
done
kill -TERM "$replica"
wait "$replica" || { echo "with-replica.sh: the replica exited with $?: $(cat "$dir/replica.log")" >&2; status=1; }
if ! cmp "$dir/primary.img" "$dir/replica.img" >&2; then
	echo "with-replica.sh: the replica's image differs from the primary's" >&2
	status=1
fi
exit "$status"
