#!/bin/bash
# The kernel group: the Linux kernel's own NBD client (nbd.ko, configured by
# nbd-client) uses the server as a disk.  The machines' kernels have no nbd, so a Debian
# kernel boots under qemu (integration/kernel/README.md).  The guest cannot reach the
# server the harness started, so it starts its own from the same command and checks
# that one: this group needs nbdsdk-check to have been given a server command.
source "$NBDSDK_GROUPS_DIR/lib.bash"

# integration/kernel in the source tree; installed, nbdsdk/kernel beside nbdsdk/check.
kernel_dir=$NBDSDK_GROUPS_DIR/../kernel

if ! have qemu-system-x86_64; then
    result skip qemu-system-x86_64 boot "missing tool: qemu-system-x86_64 (Debian package qemu-system-x86)"
    finish
fi

if [[ -z ${NBDSDK_SERVER_COMMAND:-} ]]; then
    result fail nbd-client boot "the kernel group starts the server inside a VM: give nbdsdk-check a server command, not --uri"
    finish
fi

rc=0
"$kernel_dir/fetch-kernel.sh" >/dev/null || rc=$?
if ((rc == 77)); then
    result skip nbd-client boot "missing tool: a Debian kernel package (see the fetch-kernel message in the log)"
    finish
elif ((rc != 0)); then
    result fail nbd-client boot "fetch-kernel.sh failed with status $rc; see log"
    finish
fi

# The guest holds the server's data in its memory: leave room for the export.
memory=1024
if size=$(export_size) && ((512 + 2 * (size >> 20) > memory)); then
    memory=$((512 + 2 * (size >> 20)))
fi

# Inside the guest everything, the server included, runs emulated, and the host may be
# busy with other tests: each step there gets twice the harness's timeout.
status_file=$NBDSDK_WORKDIR/.guest-status
relay < <(
    set +e
    NBDSDK_GUEST_TIMEOUT=$((NBDSDK_TIMEOUT * 10)) NBDSDK_GUEST_MEMORY=$memory \
        "$kernel_dir/run-guest.sh" "$kernel_dir/kernel-checks.sh" \
        --timeout "$((NBDSDK_TIMEOUT * 2))" --size "$NBDSDK_SIZE" --export "$NBDSDK_EXPORT" \
        --read-only "$NBDSDK_READ_ONLY" --groups "$NBDSDK_GROUPS_DIR" \
        --server "$NBDSDK_SERVER_COMMAND" 2>&1
    echo $? >"$status_file"
)
rc=$(cat "$status_file")
case $rc in
0 | 1 | 77) ;;
124) result fail nbd-client guest "the guest did not finish within $((NBDSDK_TIMEOUT * 10))s; see log" ;;
*) result fail nbd-client guest "the guest ended without a result (status $rc); see log" ;;
esac
finish
