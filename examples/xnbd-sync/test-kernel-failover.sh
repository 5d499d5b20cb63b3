#!/bin/bash
# xnbd-sync's failover with the kernel's NBD client, checked by
# failover-checks.sh in a qemu guest as for the kernel group
# (integration/kernel/README.md).
# Usage: test-kernel-failover.sh XNBD_SYNC
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NBDSDK_GUEST_TIMEOUT=${NBDSDK_GUEST_TIMEOUT:-480} \
	exec "$here/../../integration/kernel/run-guest.sh" "$here/failover-checks.sh" "$(realpath "$1")"
