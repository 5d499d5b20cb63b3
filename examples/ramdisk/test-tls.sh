#!/bin/bash
# TLS with real clients (libnbd's nbdinfo, nbdsh and nbdcopy; qemu-img): a
# test CA, certificates and PSK keys made here with GnuTLS's tools, then
# tls=require with a PSK (data both ways, a plain client refused, a wrong key
# failing the handshake), X.509 with tls-verify-peer (a client without a
# certificate refused) and tls=on (clients with and without TLS).
# Usage: test-tls.sh RAMDISK
set -euo pipefail
ramdisk=$1
for tool in psktool certtool nbdinfo nbdcopy qemu-img; do
        command -v $tool >/dev/null || { echo "SKIP: $tool is missing"; exit 77; }
done
# Debian's python3 has the nbd module; a python3 earlier in PATH may not.
nbdsh() { PATH=/usr/bin:$PATH timeout 30 nbdsh "$@"; }
nbdsh -c pass 2>/dev/null || { echo "SKIP: nbdsh does not work"; exit 77; }
"$ramdisk" --help | grep -q '^  tls=' || { echo "SKIP: nbdsdk was built without GnuTLS"; exit 77; }
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

# Credentials: alice's key, a wrong key for alice, and an X.509 authority
# with a server certificate for localhost and a client certificate.
psktool -u alice -p "$tmp/keys.psk" >/dev/null
psktool -u alice -p "$tmp/wrong.psk" >/dev/null
pki=$tmp/pki nocert=$tmp/no-client-cert
make_pki "$pki"
mkdir "$nocert"
cp "$pki/ca-cert.pem" "$nocert/"

# serve NAME ARGS...: a ramdisk in the background on $tmp/NAME.sock, its
# messages in $tmp/NAME.log; sets $sock, $log and $pid.
serve() {
        sock=$tmp/$1.sock log=$tmp/$1.log
        shift
        "$ramdisk" -v -f -U "$sock" "$@" 2>"$log" &
        pid=$!
        pids+=("$pid")
        for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
        [ -S "$sock" ] || fail "ramdisk $* did not start: $(cat "$log")"
}

stop() {
        kill -TERM "$pid"
        wait "$pid" || fail "ramdisk exited with status $? after SIGTERM"
}

# --- tls=require with a PSK ---
serve psk 64M tls=require "tls-psk=$tmp/keys.psk"
psk_uri="nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/keys.psk"
head -c 20M /dev/urandom >"$tmp/data"
t nbdcopy "$tmp/data" "$psk_uri" || fail "nbdcopy into the export over TLS"
t nbdcopy "$psk_uri" "$tmp/back" || fail "nbdcopy out of the export over TLS"
cmp -n 20971520 "$tmp/data" "$tmp/back" || fail "what nbdcopy read over TLS differs from what it wrote"
# nbdsh_tls URI CODE: CODE on a handle connected to URI, which may name files.
nbdsh_tls() { nbdsh -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('$1')" -c "$2"; }
out=$(nbdsh_tls "$psk_uri" 'print(h.get_tls_negotiated(), h.get_size())') || fail "nbdsh over TLS: $out"
[ "$out" = "True 67108864" ] || fail "nbdsh over TLS: $out"
t qemu-img convert -O raw \
        --object "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp,username=alice" \
        --image-opts "driver=nbd,server.type=unix,server.path=$sock,tls-creds=tls0" "$tmp/qemu-back" ||
        fail "qemu-img reading over TLS (PSK)"
cmp -n 20971520 "$tmp/data" "$tmp/qemu-back" || fail "what qemu-img read over TLS differs"
grep -q 'TLS (TLS1.3).*PSK user alice' "$log" || fail "no TLS session with PSK user alice logged: $(cat "$log")"
# A client without TLS gets ERR_TLS_REQD for everything but STARTTLS and
# ABORT (libnbd 1.14 reports it as ENOTSUP; sdk/tests/test-tls.c checks the
# reply itself).
if msg=$(t nbdinfo "nbd+unix:///?socket=$sock" 2>&1); then fail "a client without TLS was served: $msg"; fi
nbdsh -c "
h.set_opt_mode(True)
h.connect_uri('nbd+unix:///?socket=$sock')
try:
    h.opt_info()
    raise SystemExit('INFO without TLS succeeded')
except nbd.Error as e:
    print(e)
h.opt_abort()
" >"$tmp/plain.out" 2>&1 || fail "nbdsh without TLS: $(cat "$tmp/plain.out")"
grep -q 'server replied with error to opt_info' "$tmp/plain.out" ||
        fail "INFO without TLS was not refused: $(cat "$tmp/plain.out")"
if msg=$(t nbdinfo "nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/wrong.psk" 2>&1); then
        fail "a client with the wrong key was served: $msg"
fi
grep -q 'TLS handshake failed' "$log" || fail "the failed handshake is not logged: $(cat "$log")"
stop

# --- X.509, client certificates required ---
serve x509 16M tls=require "tls-certificates=$pki" tls-verify-peer=true
out=$(t nbdinfo --size "nbds+unix:///?socket=$sock&tls-certificates=$pki") ||
        fail "nbdinfo with a client certificate: $out"
[ "$out" = 16777216 ] || fail "nbdinfo over X.509 TLS says the size is $out"
t qemu-img info --object "tls-creds-x509,id=tls0,endpoint=client,dir=$pki" \
        --image-opts "driver=nbd,server.type=unix,server.path=$sock,tls-creds=tls0,tls-hostname=localhost" |
        grep -q 'virtual size: 16 MiB' || fail "qemu-img info over X.509 TLS"
if msg=$(t nbdinfo "nbds+unix:///?socket=$sock&tls-certificates=$nocert" 2>&1); then
        fail "a client without a certificate was served although tls-verify-peer=true: $msg"
fi
grep -q 'TLS handshake failed' "$log" || fail "the refused client is not logged: $(cat "$log")"
stop

# --- tls=on: the client chooses ---
serve on 16M tls=on "tls-psk=$tmp/keys.psk"
out=$(nbdsh -u "nbd+unix:///?socket=$sock" -c 'print(h.get_tls_negotiated())') || fail "tls=on without TLS: $out"
[ "$out" = False ] || fail "tls=on, a client without TLS: $out"
out=$(nbdsh_tls "nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/keys.psk" 'print(h.get_tls_negotiated())') ||
        fail "tls=on with TLS: $out"
[ "$out" = True ] || fail "tls=on, a client with TLS: $out"
stop

# --- tls=on with a TLS-only export (tls-only=true in its section) ---
printf '%s\n' "[general]" "tls = on" "tls-psk = $tmp/keys.psk" "[export public]" "size = 1M" \
        "[export secret]" "size = 2M" "tls-only = true" >"$tmp/selective.conf"
serve selective --config "$tmp/selective.conf"
plain=$(t nbdinfo --list "nbd+unix:///?socket=$sock") || fail "nbdinfo --list without TLS: $plain"
grep -q 'export="public"' <<<"$plain" && ! grep -q 'secret' <<<"$plain" ||
        fail "LIST without TLS must show public and hide secret: $plain"
if msg=$(t nbdinfo --size "nbd+unix:///secret?socket=$sock" 2>&1); then
        fail "the TLS-only export was served without TLS: $msg"
fi
[ "$(t nbdinfo --size "nbd+unix:///public?socket=$sock")" = 1048576 ] || fail "public export without TLS"
secure="nbds+unix://alice@/secret?socket=$sock&tls-psk-file=$tmp/keys.psk"
[ "$(t nbdinfo --size "$secure")" = 2097152 ] || fail "the TLS-only export over TLS"
t nbdinfo --list "$secure" | grep -q 'export="secret"' || fail "LIST over TLS does not show the TLS-only export"
stop

# With tls=require, the URI given to --run says TLS (nbds).
out=$(t "$ramdisk" -U - 16M tls=require "tls-psk=$tmp/keys.psk" --run 'echo "$uri"') || fail "--run: $out"
[[ $out == nbds+unix:///\?socket=* ]] || fail "tls=require, --run's \$uri: $out"

# Without credentials, tls=require is a configuration error.
if msg=$("$ramdisk" -f -U "$tmp/none.sock" 16M tls=require 2>&1); then fail "tls=require without credentials served"; fi
grep -q 'needs certificates or a PSK file' <<<"$msg" || fail "tls=require without credentials: $msg"
echo "ok"
