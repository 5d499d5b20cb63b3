#!/bin/bash
# qemu-like's TLS options, as qemu-nbd has them (--object tls-creds-psk or
# tls-creds-x509 with endpoint=server, --tls-creds=ID), with qemu-img as the
# client: data over TLS, plain clients refused, client certificates required
# unless verify-peer=off; ",," for a comma in a value; and bad --object/--tls-creds
# values refused in one line.
# Usage: test-tls.sh QEMU-LIKE
set -euo pipefail
ql=$1
for tool in psktool certtool qemu-img qemu-io; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing"; exit 77; }
done
tmp_template=/dev/shm/qemu-like-tls.XXXXXX
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"
"$ql" --help | grep -q -- '--tls-creds' || fail "--help does not mention --tls-creds"

mkdir "$tmp/psk" "$tmp/client-nocert"
psktool -u alice -p "$tmp/psk/keys.psk" >/dev/null
make_pki "$tmp/pki"
cp "$tmp/pki/ca-cert.pem" "$tmp/client-nocert/"
truncate -s 4M "$tmp/disk.img"

# bad ARGS... MESSAGE: qemu-like refuses ARGS with exit status 1 and MESSAGE.
bad() {
	local msg=${!#} out status=0
	out=$("$ql" "${@:1:$#-1}" "$tmp/disk.img" 2>&1) || status=$?
	[ "$status" = 1 ] || fail "qemu-like ${*:1:$#-1}: exit status $status, not 1: $out"
	grep -qF -- "$msg" <<<"$out" || fail "qemu-like ${*:1:$#-1}: expected '$msg', got: $out"
}
bad --object foo,id=x "unsupported type 'foo'"
bad --object tls-creds-psk,id=x "needs id= and dir="
bad --object "tls-creds-psk,id=x,dir=$tmp/psk" "endpoint=server"
bad --object "tls-creds-psk,id=x,dir=$tmp/psk,endpoint=client" "endpoint=server, not 'client'"
bad --object "tls-creds-psk,id=x,dir=$tmp/psk,endpoint=server,verify-peer=on" "unknown property 'verify-peer'"
bad --object "tls-creds-x509,id=x,dir=$tmp/pki,endpoint=server,verify-peer=maybe" "invalid verify-peer 'maybe'"
bad --object "tls-creds-psk,id=x,dir=$tmp/psk,endpoint=server" \
	--object "tls-creds-psk,id=x,dir=$tmp/psk,endpoint=server" "id 'x' is used twice"
bad --object "tls-creds-psk,id=x,dir=$tmp/p,sk,endpoint=server" "'sk' is not key=value"
bad --tls-creds=nope "no --object has id 'nope'"
bad -k "$tmp/x.sock" --object "tls-creds-x509,id=x,dir=$tmp/psk,endpoint=server" --tls-creds=x \
	"unusable TLS credentials in $tmp/psk"

# serve ARGS...: qemu-like -t on $tmp/ql.sock in the background; sets $pid.
serve() {
	rm -f "$tmp/ql.sock"
	"$ql" -t -k "$tmp/ql.sock" "$@" "$tmp/disk.img" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do [ -S "$tmp/ql.sock" ] && break; sleep 0.05; done
	[ -S "$tmp/ql.sock" ] || fail "qemu-like $* did not start"
}
stop() {
	kill -TERM "$pid"
	wait_exit "$pid"
	[ "$exit_status" = 0 ] || fail "qemu-like exited with $exit_status after SIGTERM"
}
# qio OBJECT [OPTS] -- QEMU-IO-ARGS...: qemu-io on the socket with TLS object OBJECT.
qio() {
	local object=$1 opts=$2
	shift 2
	t qemu-io --object "$object" \
		--image-opts "driver=nbd,server.type=unix,server.path=$tmp/ql.sock,tls-creds=tls0$opts" "$@"
}

serve --object "tls-creds-psk,id=tls0,dir=$tmp/psk,endpoint=server" --tls-creds=tls0
psk_client="tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/psk,username=alice"
qio "$psk_client" "" -c 'write -P 0x5a 1M 1M' >/dev/null || fail "writing over TLS (PSK)"
qio "$psk_client" "" -c 'read -P 0x5a 1M 1M' -c 'read -P 0 0 1M' >/dev/null ||
	fail "reading back over TLS (PSK) did not give what was written"
if out=$(t qemu-img info "nbd+unix:///?socket=$tmp/ql.sock" 2>&1); then fail "a client without TLS was served: $out"; fi
grep -q 'TLS negotiation required' <<<"$out" || fail "a plain client was not told TLS is required: $out"
stop

# A comma in a value is written ",,", as qemu has it.
mkdir "$tmp/p,sk"
cp "$tmp/psk/keys.psk" "$tmp/p,sk/"
serve --object "tls-creds-psk,id=tls0,dir=$tmp/p,,sk,endpoint=server" --tls-creds=tls0
qio "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/p,,sk,username=alice" "" -c 'read -P 0x5a 1M 1M' >/dev/null ||
	fail "dir=$tmp/p,,sk: reading over TLS with the keys in $tmp/p,sk"
stop

serve --object "tls-creds-x509,id=tls0,dir=$tmp/pki,endpoint=server" --tls-creds=tls0
x509_client="tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/pki"
qio "$x509_client" ",tls-hostname=localhost" -c 'read -P 0x5a 1M 1M' >/dev/null ||
	fail "reading over X.509 TLS with a client certificate"
if out=$(qio "tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/client-nocert" ",tls-hostname=localhost" \
	-c 'read 0 4k' 2>&1); then
	fail "a client without a certificate was served (qemu's default is verify-peer=on): $out"
fi
stop

serve --object "tls-creds-x509,id=tls0,dir=$tmp/pki,endpoint=server,verify-peer=off" --tls-creds=tls0
qio "tls-creds-x509,id=tls0,endpoint=client,dir=$tmp/client-nocert" ",tls-hostname=localhost" \
	-c 'read -P 0x5a 1M 1M' >/dev/null || fail "verify-peer=off: a client without a certificate was refused"
stop
echo ok
