#!/bin/busybox sh
# shellcheck shell=dash
# /init of the guest's initramfs (built by fetch-kernel.sh, booted by run-guest.sh).
# Loads the modules, mounts the host's root read-only over 9p, and runs the job that
# run-guest.sh put base64-encoded on the kernel command line (nbdsdk_job=...) in a
# chroot of it.  Prints NBDSDK_GUEST_RC=<status> on the console, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "guest-init: $*"
    echo "NBDSDK_GUEST_RC=125"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# modules/order lists the .ko files in dependency order (modprobe --show-depends).
while read -r module; do
    insmod "/modules/$module" || echo "guest-init: insmod $module failed"
done </modules/order

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /host ||
    fail "cannot mount the host's root over 9p"
ip link set lo up

# The host root is read-only: the chroot gets fresh proc/sys/dev and a tmpfs on /run
# for scratch space.
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs -o mode=755 tmpfs /host/run
mkdir -p /host/run/tmp

job=
read -r cmdline </proc/cmdline
for word in $cmdline; do
    case $word in
        nbdsdk_job=*) job=${word#nbdsdk_job=} ;;
    esac
done
[ -n "$job" ] || fail "no nbdsdk_job= on the kernel command line"
echo "$job" | base64 -d >/host/run/nbdsdk-job.sh || fail "cannot decode the job"

chroot /host /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/run TMPDIR=/run/tmp LANG=C.UTF-8 \
    /bin/bash /run/nbdsdk-job.sh </dev/null
rc=$?
sync
echo "NBDSDK_GUEST_RC=$rc"
poweroff -f
