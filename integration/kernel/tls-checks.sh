#!/bin/bash
# Runs INSIDE the guest (run-guest.sh): the kernel's NBD client over TLS.  nbd-client
# does the TLS handshake and then relays the session for the kernel, against an nbdsdk
# server started here with tls=require and client certificates required.
# Usage: tls-checks.sh SERVER PKI — SERVER an nbdsdk program taking SIZE and key=value
# settings (the ramdisk); PKI a directory with ca-cert.pem, server-{cert,key}.pem and
# client-{cert,key}.pem for localhost.  Prints "ok: ..." per check; exit status 1 at
# the first failure, with "FAIL: ..." saying what happened.
set -uo pipefail
server=$1 pki=$2
sock=/run/tls.sock log=/run/tls-server.log
fail() { echo "FAIL: $*"; tail -n 20 "$log"; exit 1; }
ok() { echo "ok: $*"; }

"$server" -f -U "$sock" 64M tls=require "tls-certificates=$pki" tls-verify-peer=true >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.2; done
[[ -S $sock ]] || fail "the server did not listen on $sock"

tls=(-enable-tls -cacertfile "$pki/ca-cert.pem" -tlshostname localhost)
client=(-certfile "$pki/client-cert.pem" -keyfile "$pki/client-key.pem")
out=$(timeout 120 nbd-client -unix "$sock" /dev/nbd0 -N "" -t 60 "${tls[@]}" "${client[@]}" 2>&1) ||
        fail "nbd-client with TLS: $out"
size=$(($(cat /sys/block/nbd0/size) * 512))
((size == 64 << 20)) || fail "/dev/nbd0 has $size bytes over TLS, not 64 MiB"
ok "nbd-client over TLS attaches a 64 MiB device"

head -c 4M /dev/urandom >/run/data
timeout 120 dd if=/run/data of=/dev/nbd0 bs=1M seek=3 oflag=direct status=none || fail "writing over TLS"
timeout 120 dd if=/dev/nbd0 of=/run/back bs=1M skip=3 count=4 iflag=direct status=none || fail "reading over TLS"
cmp -s /run/data /run/back || fail "what was read back over TLS differs from what was written"
ok "4 MiB written and read back with O_DIRECT over TLS"
timeout 60 nbd-client -d /dev/nbd0 >/dev/null 2>&1 || fail "nbd-client -d"
for _ in $(seq 100); do [[ $(cat /sys/block/nbd0/size) == 0 ]] && break; sleep 0.2; done
[[ $(cat /sys/block/nbd0/size) == 0 ]] || fail "/dev/nbd0 still attached after nbd-client -d"
ok "disconnect"

out=$(timeout 120 nbd-client -unix "$sock" /dev/nbd1 -N "" -t 60 2>&1) && fail "a client without TLS was served: $out"
grep -q 'requires TLS' <<<"$out" || fail "a client without TLS was not told TLS is required: $out"
ok "a client without TLS is refused: $(head -n 1 <<<"${out##*Server said: }")"
out=$(timeout 120 nbd-client -unix "$sock" /dev/nbd1 -N "" -t 60 "${tls[@]}" 2>&1) &&
        fail "a client without a certificate was served although tls-verify-peer=true: $out"
grep -q 'TLS handshake failed' "$log" || fail "the server did not log the refused handshake"
ok "a TLS client without a certificate is refused"
kill -0 "$pid" 2>/dev/null || fail "the server died"
kill "$pid"
ok "the server survived"
