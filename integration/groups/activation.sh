#!/bin/bash
# activation group: the server started by systemd-socket-activate, which hands it
# listening sockets through LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES (sd_listen_fds(3)).
# The server runs as given to nbdsdk-check with its {listen} argument left out.
# shellcheck source=groups/lib.bash
source "$NBDSDK_GROUPS_DIR/lib.bash"

work=$NBDSDK_WORKDIR
given=()
eval "given=(${NBDSDK_SERVER_COMMAND:-})"
server=()
for arg in "${given[@]}"; do
	[[ $arg == '{listen}' ]] || server+=("$arg")
done
if ((${#server[@]} == ${#given[@]})); then
	echo "activation group: the server command has no {listen} argument to leave out" >&2
	exit 2
fi

activated_pid=
# stop_activated: SIGTERM, bounded wait, SIGKILL; a server that does not exit cleanly
# on SIGTERM (crash, sanitizer report) fails the check.
stop_activated() {
	[[ -n $activated_pid ]] || return 0
	local pid=$activated_pid i rc=0
	activated_pid=
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -KILL "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || true
		fail "the activated server did not exit within 10s of SIGTERM"
	fi
	wait "$pid" || rc=$?
	((rc == 0 || rc == 128 + 15)) || fail "the activated server exited with status $rc on SIGTERM"
}

# activate FDNAMES SOCKET...: start the server under systemd-socket-activate. It
# listens itself, so the sockets exist once it runs; the server starts (exec, same
# PID) at the first connection.
activate() {
	local names=$1 args=() s
	shift
	for s in "$@"; do
		rm -f "$s"
		args+=(-l "$s")
	done
	echo "+ systemd-socket-activate ${args[*]} --fdname=$names ${server[*]}" >&2
	systemd-socket-activate "${args[@]}" --fdname="$names" "${server[@]}" >&2 </dev/null &
	activated_pid=$!
	trap stop_activated EXIT # (each check runs in its own subshell)
	local deadline=$((SECONDS + NBDSDK_TIMEOUT))
	for s in "$@"; do
		until [[ -S $s ]]; do
			((SECONDS < deadline)) || fail "systemd-socket-activate did not create $s"
			kill -0 "$activated_pid" || fail "systemd-socket-activate exited"
			sleep 0.1
		done
	done
}

# serves SOCKET: a real client works through this socket, twice (the second
# connection proves the server kept listening on the inherited socket).
serves() {
	local uri="nbd+unix:///$NBDSDK_EXPORT?socket=$1" size
	size=$(run nbdinfo --size "$uri") || fail "nbdinfo through the activated socket $1 failed"
	((size > 0)) || fail "activated server reports size $size"
	run nbdinfo --can connect "$uri" || fail "second connection to $1 failed"
	if ((!NBDSDK_READ_ONLY)); then
		head -c 1M /dev/urandom >"$work/data"
		run nbdcopy "$work/data" "$uri"
		run nbdcopy "$uri" "$work/back"
		expect_eq "data written and read back through $1" \
			"$(head -c 1M "$work/back" | sha256sum)" "$(sha256sum <"$work/data")"
		rm -f "$work/back"
	fi
}

one_socket() {
	activate nbd "$work/a.sock"
	serves "$work/a.sock"
	kill -0 "$activated_pid" || fail "the activated server exited"
	stop_activated
}

two_sockets() {
	activate first:second "$work/a.sock" "$work/b.sock"
	serves "$work/b.sock"
	serves "$work/a.sock"
	stop_activated
}

check --needs nbdinfo --needs nbdcopy systemd-socket-activate one-socket one_socket
check --needs nbdinfo --needs nbdcopy systemd-socket-activate two-sockets-with-names two_sockets
finish
