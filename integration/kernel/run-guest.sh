#!/bin/bash
# Boot the Debian kernel prepared by fetch-kernel.sh under qemu TCG and run
#   bash SCRIPT ARGS...
# as root inside a chroot of the host's root (shared read-only over 9p; /run is a
# tmpfs), in the current directory.  The guest has no network device: whatever the
# script starts talks over the guest's own loopback.  The guest's console goes to
# standard output; the exit status is the script's, read from the NBDSDK_GUEST_RC marker.
#
# Environment: NBDSDK_GUEST_TIMEOUT (seconds for the whole boot-run-poweroff, default
# 240), NBDSDK_GUEST_MEMORY (MiB, default 1024), NBDSDK_KERNEL_CACHE (see fetch-kernel.sh).
# Exit status: the script's; 77 if qemu-system-x86_64 or the kernel cannot be had
# (fetch-kernel.sh); 124 on timeout; 125 if the guest died without reporting a status.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf 'run-guest: %s\n' "$*" >&2; }

(($# >= 1)) || { say "usage: run-guest.sh SCRIPT [ARGS...]"; exit 2; }
script=$(realpath "$1")
shift
[[ -f $script ]] || { say "no such script: $script"; exit 2; }
timeout_s=${NBDSDK_GUEST_TIMEOUT:-240}
memory=${NBDSDK_GUEST_MEMORY:-1024}

if ! command -v qemu-system-x86_64 >/dev/null; then
    say "missing tool: qemu-system-x86_64 (Debian package qemu-system-x86)"
    exit 77
fi
kernel_dir=$("$here/fetch-kernel.sh")

# The job travels base64-encoded on the kernel command line, so no file has to be
# shared with the guest.  x86 allows 2048 bytes of command line.
# Relative paths in ARGS work when the current directory is visible in the guest too.
job=$(printf 'cd %q 2>/dev/null || cd /; exec /bin/bash %q' "$PWD" "$script"
    (($# == 0)) || printf ' %q' "$@")
append="console=ttyS0 quiet loglevel=1 panic=-1 nbdsdk_job=$(printf '%s\n' "$job" | base64 -w0)"
((${#append} < 2000)) || { say "arguments too long for the kernel command line"; exit 2; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# -nodefaults and -nic none: no network card, no default devices besides the console.
# shellcheck disable=SC2054 # the commas are qemu option syntax
qemu=(qemu-system-x86_64 -nodefaults -nic none -no-reboot
    -accel tcg,thread=multi -cpu max -m "$memory" -smp 2
    -display none -serial stdio
    -kernel "$kernel_dir/vmlinuz" -initrd "$kernel_dir/initrd.gz" -append "$append"
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap)

set +e
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null | sed -u 's/\r$//' | tee "$log" | sed -u '/^NBDSDK_GUEST_RC=/d'
status=${PIPESTATUS[0]}
set -e

rc=$(sed -n 's/^NBDSDK_GUEST_RC=\([0-9]*\)$/\1/p' "$log" | tail -n 1)
if [[ -n $rc ]]; then
    exit "$rc"
elif ((status == 124 || status == 137)); then
    say "the guest did not finish within ${timeout_s}s"
    exit 124
else
    say "the guest stopped without reporting a status (qemu exit status $status)"
    exit 125
fi
