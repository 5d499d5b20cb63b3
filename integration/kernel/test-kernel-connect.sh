#!/bin/bash
# nbdsdk programs serving the kernel's NBD driver directly (-c DEVICE), checked
# by connect-checks.sh in a qemu guest as for the kernel group (README.md): the
# ramdisk, gznbd on a gzip image made here, and qemu-like (qemu-nbd's -c and -d).
# Usage: test-kernel-connect.sh RAMDISK GZNBD QEMU-LIKE
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ramdisk=$(realpath "$1") gznbd=$(realpath "$2") qemu_like=$(realpath "$3")
# shellcheck source=../../examples/test-lib.bash
source "$here/../../examples/test-lib.bash"
{
	head -c 3M /dev/urandom
	head -c 2M /dev/zero
	seq 1 200000
} >"$tmp/disk.img"
gzip -c "$tmp/disk.img" >"$tmp/disk.img.gz"
chmod -R a+rX "$tmp"
# About 50-100 s here (many processes start in the emulated guest); room for a busy host.
NBDSDK_GUEST_TIMEOUT=${NBDSDK_GUEST_TIMEOUT:-480} \
	"$here/run-guest.sh" "$here/connect-checks.sh" "$ramdisk" "$gznbd" "$qemu_like" "$tmp/disk.img.gz" "$tmp/disk.img"
