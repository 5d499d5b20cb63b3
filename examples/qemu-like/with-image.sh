#!/bin/bash
# with-image.sh [-r] SIZE PROGRAM ARGS...
# Run PROGRAM ARGS with each word {image} replaced by a fresh sparse raw image of
# SIZE bytes (suffixes as truncate(1) takes them) made in $TMPDIR, else /dev/shm (a
# tmpfs).  The image is unlinked at once and handed over as /proc/self/fd/3, so it goes
# away with the server; the server replaces this script (exec), keeping its PID for
# whoever signals it.  A leading -r is passed on to PROGRAM: the kernel group makes
# its read-only server by inserting -r after the first word of the command.
set -euo pipefail
ro=()
if [[ ${1:-} == -r ]]; then
	ro=(-r)
	shift
fi
(($# >= 2)) || { echo "usage: with-image.sh [-r] SIZE PROGRAM ARGS..." >&2; exit 2; }
size=$1 program=$2
shift 2
image=$(mktemp "${TMPDIR:-/dev/shm}/qemu-like-image.XXXXXX")
truncate -s "$size" "$image"
exec 3<>"$image"
rm -f "$image"
args=()
for arg in "$@"; do
	args+=("${arg//\{image\}//proc/self/fd/3}")
done
exec "$program" "${ro[@]}" "${args[@]}"
