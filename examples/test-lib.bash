# Sourced by the examples' command-line tests: a temporary directory (made from
# the template in $tmp_template, default /tmp/nbdsdk-test.XXXXXX) removed at exit,
# the background servers listed in pids stopped at exit, fail(), t(),
# wait_exit(), check_notify() and make_pki().
tmp=$(mktemp -d "${tmp_template:-/tmp/nbdsdk-test.XXXXXX}")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
t() { timeout 30 "$@"; }

# wait_exit PID: the process (a child of this shell) ends within 10 s; its exit
# status goes to $exit_status.
wait_exit() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && fail "process $1 still running after 10 s"
	exit_status=0
	wait "$1" || exit_status=$?
}

# check_notify CMD...: CMD, a server in the foreground, run as a service
# manager runs it (NOTIFY_SOCKET, WATCHDOG_USEC of 0.2 s) for 1 s, then sent
# SIGTERM, must exit 0 having sent READY=1, WATCHDOG=1 every half interval
# (at least 4), and STOPPING=1.
check_notify() {
	local sock=$tmp/notify.sock out=$tmp/notified pid pings
	rm -f "$sock" "$out"
	/usr/bin/python3 - "$sock" "$out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "a") as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
        out.flush()
PY
	pids+=($!)
	for _ in $(seq 50); do
		[ -S "$sock" ] && break
		sleep 0.1
	done
	[ -S "$sock" ] || fail "no notify socket $sock after 5 s"
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=200000 "$@" &
	pid=$!
	pids+=("$pid")
	sleep 1
	kill -TERM "$pid"
	wait_exit "$pid"
	[ "$exit_status" = 0 ] || fail "$1 under a service manager exited with $exit_status"
	grep -q "READY=1" "$out" || fail "$1 sent no READY=1: $(cat "$out")"
	grep -q "STOPPING=1" "$out" || fail "$1 sent no STOPPING=1: $(cat "$out")"
	pings=$(grep -c "WATCHDOG=1" "$out" || true)
	[ "$pings" -ge 4 ] || fail "$1 sent $pings WATCHDOG=1 in 1 s with a 0.2 s watchdog, not at least 4"
}

# make_pki DIR: a test X.509 authority (DIR/ca-key.pem, DIR/ca-cert.pem), a
# server certificate for localhost (DIR/server-{key,cert}.pem) and a client
# one (DIR/client-{key,cert}.pem), valid for 2 days, made with certtool.
make_pki() {
	local dir=$1 name
	mkdir -p "$dir"
	certtool --generate-privkey --outfile "$dir/ca-key.pem" 2>/dev/null
	printf '%s\n' "cn = nbdsdk test CA" ca cert_signing_key "expiration_days = 2" >"$dir/ca.info"
	certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" --template "$dir/ca.info" \
		--outfile "$dir/ca-cert.pem" 2>/dev/null
	printf '%s\n' "cn = localhost" "dns_name = localhost" tls_www_server encryption_key signing_key \
		"expiration_days = 2" >"$dir/server.info"
	printf '%s\n' "cn = nbdsdk test client" tls_www_client encryption_key signing_key \
		"expiration_days = 2" >"$dir/client.info"
	for name in server client; do
		certtool --generate-privkey --outfile "$dir/$name-key.pem" 2>/dev/null
		certtool --generate-certificate --load-ca-certificate "$dir/ca-cert.pem" \
			--load-ca-privkey "$dir/ca-key.pem" --load-privkey "$dir/$name-key.pem" \
			--template "$dir/$name.info" --outfile "$dir/$name-cert.pem" 2>/dev/null
	done
}
