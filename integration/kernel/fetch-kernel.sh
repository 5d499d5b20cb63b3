#!/bin/bash
# Prepare what run-guest.sh boots: one Debian kernel (with nbd.ko, 9p and ext4 as
# modules) and a busybox initramfs that loads them, mounts the host's root over 9p and
# runs a script in a chroot of it.  See notes/kernel-nbd-in-a-vm.md for why.
#
# Usage: fetch-kernel.sh [CACHE_DIR]
#   CACHE_DIR defaults to $NBDSDK_KERNEL_CACHE, else $XDG_CACHE_HOME/nbdsdk/kernel,
#   else /var/cache/nbdsdk-kernel.
# Prints the directory holding `vmlinuz` and `initrd.gz` on standard output.
# Downloads and builds only what is missing: a second call just prints the path.  The
# initramfs is rebuilt when guest-init.sh changed.
# Needs (Debian packages): busybox-static, kmod, cpio, and apt-get for the download.
# Exit status: 0, 77 if a tool or the kernel package cannot be had, 1 on other errors.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -n ${1:-} ]]; then
    cache=$1
elif [[ -n ${NBDSDK_KERNEL_CACHE:-} ]]; then
    cache=$NBDSDK_KERNEL_CACHE
elif [[ -n ${XDG_CACHE_HOME:-} ]]; then
    cache=$XDG_CACHE_HOME/nbdsdk/kernel
else
    cache=/var/cache/nbdsdk-kernel
fi

say() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
unavailable() { say "$*"; exit 77; }

# The modules the guest needs, by name; their dependencies are added by modprobe.
# crc32c_generic is listed because ext4 only soft-depends on it, and without it
# mounting ext4 fails with ENOENT.  unix_diag lets ss report the bytes waiting in Unix
# sockets (kernel-checks' diagnostics); without it ss shows every queue as empty.
guest_modules=(virtio_pci 9pnet_virtio 9p nbd crc32c_generic ext4 unix_diag)

# "current" names the one kernel this cache uses: once it is complete, nothing else is
# consulted, so a cached run needs neither apt nor the network.  initrd.gz.init records
# which guest-init.sh and module list the initramfs holds.
current=$cache/current
init_hash=$({ cat "$here/guest-init.sh"; printf '%s\n' "${guest_modules[@]}"; } | sha256sum | cut -d' ' -f1)
if [[ -f $current/vmlinuz && -f $current/initrd.gz &&
    $(cat "$current/initrd.gz.init" 2>/dev/null) == "$init_hash" ]]; then
    printf '%s\n' "$current"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb depmod modprobe cpio gzip; do
    command -v "$tool" >/dev/null || unavailable "missing tool: $tool (Debian package kmod, cpio or apt)"
done
# The initramfs has no libraries, so its busybox must be the static build.
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
    unavailable "missing tool: static $busybox (Debian package busybox-static)"
fi

# The exact package linux-image-amd64 depends on; naming one version keeps
# `apt-get download` from fetching every kernel in the archive.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
if [[ -L $current ]]; then
    package=$(basename "$(readlink "$current")")
else
    package=$(kernel_package)
fi
if [[ -z $package && $(id -u) == 0 ]]; then
    say "apt knows no linux-image-amd64; running apt-get update"
    apt-get update -qq >&2
    package=$(kernel_package)
fi
[[ -n $package ]] || unavailable "apt-cache cannot name the kernel package behind linux-image-amd64 (run apt-get update)"

dir=$cache/$package
mkdir -p "$dir"
if ! compgen -G "$dir/${package}_*.deb" >/dev/null; then
    say "downloading $package"
    (cd "$dir" && apt-get download -q "$package" >&2) || unavailable "cannot download $package"
fi
debs=("$dir/${package}_"*.deb)

# Only vmlinuz and initrd.gz are kept; the unpacked package (400 MB) is scratch.
scratch=$(mktemp -d "$dir/scratch.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
say "unpacking ${debs[0]##*/}"
dpkg-deb -x "${debs[0]}" "$scratch/root"
version=$(ls "$scratch/root/lib/modules")
[[ -n $version && $version != *$'\n'* ]] || die "expected one kernel version in ${debs[0]}"
depmod -b "$scratch/root" "$version"

say "building the initramfs for $version"
stage=$scratch/initrd
mkdir -p "$stage"/{bin,proc,sys,dev,host,modules}
cp "$busybox" "$stage/bin/busybox"
cp "$here/guest-init.sh" "$stage/init"
chmod 755 "$stage/init"
# modprobe prints "insmod PATH" in load order, soft dependencies included.
modprobe -d "$scratch/root" -S "$version" --show-depends -a "${guest_modules[@]}" |
    awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$scratch/modules"
[[ -s $scratch/modules ]] || die "modprobe found none of ${guest_modules[*]} in $package"
while read -r ko; do
    cp "$ko" "$stage/modules/"
    printf '%s\n' "${ko##*/}" >>"$stage/modules/order"
done <"$scratch/modules"
(cd "$stage" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0) | gzip -9 >"$scratch/initrd.gz"

cp "$scratch/root/boot/vmlinuz-$version" "$dir/vmlinuz"
mv "$scratch/initrd.gz" "$dir/initrd.gz"
printf '%s\n' "$init_hash" >"$dir/initrd.gz.init"
ln -sfn "$package" "$current"
printf '%s\n' "$current"
