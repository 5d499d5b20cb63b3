#!/bin/bash
# The kernel's NBD client over TLS (tls-checks.sh, in a qemu guest as for the kernel
# group; README.md), against SERVER, an nbdsdk program such as the ramdisk, with a
# test authority and certificates made here.
# Usage: test-kernel-tls.sh SERVER
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$(realpath "$1")
command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) is missing"; exit 77; }
"$server" --help | grep -q '^  tls=' || { echo "SKIP: nbdsdk was built without GnuTLS"; exit 77; }
# shellcheck source=../../examples/test-lib.bash
source "$here/../../examples/test-lib.bash"
make_pki "$tmp/pki"
chmod -R a+rX "$tmp"
"$here/run-guest.sh" "$here/tls-checks.sh" "$server" "$tmp/pki"
