#!/bin/bash
# Run nbdsdk-check against a peer server, so that a failing check can be told apart
# from a client quirk: the same groups must pass there too, or be listed in
# groups/peer-deviations.  Usage: differential.sh PEER [nbdsdk-check OPTIONS...]
# PEER: nbdkit-memory | nbdkit-file | qemu-nbd
set -euo pipefail

check=$(dirname "$(readlink -f "$0")")/nbdsdk-check
peer=${1:?usage: differential.sh nbdkit-memory|nbdkit-file|qemu-nbd [OPTIONS...]}
shift

case $peer in
nbdkit-*) tool=nbdkit ;;
qemu-nbd) tool=qemu-nbd ;;
*) echo "differential.sh: unknown peer $peer" >&2; exit 2 ;;
esac
if ! command -v "$tool" >/dev/null; then
	echo "differential.sh: $tool is missing (Debian package: ${tool/qemu-nbd/qemu-utils}); skipping"
	exit 77
fi

# The file-backed peers get a sparse image in a private directory.
dir=$(mktemp -d "${TMPDIR:-/tmp}/nbdsdk-differential.XXXXXX")
trap 'rm -rf "$dir"' EXIT
truncate -s 1G "$dir/disk.img"

case $peer in
nbdkit-memory) server=(nbdkit -f '{listen}' memory 1G) ;;
nbdkit-file) server=(nbdkit -f '{listen}' file "$dir/disk.img") ;;
qemu-nbd) server=(qemu-nbd -t -f raw --shared=16 -k '{socket}' "$dir/disk.img") ;;
esac
"$check" --peer "$tool" "$@" -- "${server[@]}"
