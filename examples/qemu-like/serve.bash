# Sourced by the qemu-like tests: start and stop one server on $tmp/sock.
# The sourcing script sets ql (the program), tmp, pid and fail().

# serve ARGS...: start qemu-like -t -k SOCK ARGS... and wait for its socket.
serve() {
	rm -f "$tmp/sock"
	"$ql" -t -k "$tmp/sock" "$@" &
	pid=$!
	for _ in $(seq 200); do
		[[ -S $tmp/sock ]] && return 0
		kill -0 "$pid" 2>/dev/null || fail "qemu-like $* did not start"
		sleep 0.05
	done
	fail "qemu-like $* did not listen"
}

# stop: SIGTERM, and the server must exit cleanly within 15 s.
stop() {
	kill -TERM "$pid"
	local rc=0
	timeout 15 tail --pid="$pid" -f /dev/null || fail "qemu-like did not stop on SIGTERM"
	wait "$pid" || rc=$?
	pid=
	((rc == 0)) || fail "qemu-like exited with status $rc"
}
