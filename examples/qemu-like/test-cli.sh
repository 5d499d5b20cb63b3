#!/bin/bash
# qemu-like's command line: bad input gives one clear line and exit status 1;
# --help/--version; TCP and Unix sockets; -x, -D, -r; -e and multi-conn; the end
# with the last client unless -t; --fork with --pid-file; SIGTERM; sd_notify and
# the watchdog; systemd socket activation with the command line of the shipped
# service unit.
# Usage: test-cli.sh QEMU-LIKE SERVICE-UNIT
set -euo pipefail
ql=$1 unit=$2
for tool in nbdinfo /usr/bin/python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing (libnbd-bin, python3)"; exit 77; }
done
# A private directory on a tmpfs.
tmp_template=/dev/shm/qemu-like-cli.XXXXXX
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"
chmod 755 "$tmp"
uri() { echo "nbd+unix:///${2:-}?socket=$1"; }

# wait_socket PATH PID: until PATH accepts connections (PID must stay alive).
wait_socket() {
	for _ in $(seq 200); do
		[[ -S $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || fail "the server exited before listening on $1"
		sleep 0.05
	done
	fail "no socket $1 after 10 s"
}

truncate -s 1M "$tmp/disk.img"
head -c 100 /dev/zero >"$tmp/tiny.img"
head -c 1000 /dev/zero >"$tmp/odd.img"
: >"$tmp/empty.img"

# A TCP port that is in use for as long as this listener lives.
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(120)' >"$tmp/busy-port" &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/busy-port ]] && break; sleep 0.05; done
busy=$(cat "$tmp/busy-port")

# bad EXPECTED-TEXT ARGS...: exit status 1, one line on stderr containing the text.
# The server runs as "${as_user[@]}" qemu-like (as_user is empty but for permission checks).
as_user=()
bad() {
	local want=$1 err rc=0
	shift
	err=$(TMPDIR=$tmp t "${as_user[@]}" "$ql" "$@" 2>&1 >/dev/null) || rc=$?
	[[ $rc == 1 ]] || fail "'$*' exited $rc, not 1 ($err)"
	[[ $(wc -l <<<"$err") == 1 ]] || fail "'$*' printed more than one line: $err"
	[[ $err == "qemu-like: "*"$want"* ]] || fail "'$*' said '$err', expected it to mention '$want'"
}
k=(-k "$tmp/never.sock")
bad "cannot open $tmp/missing.img: No such file" "${k[@]}" "$tmp/missing.img"
bad "is a directory" "${k[@]}" "$tmp"
bad "is empty" "${k[@]}" "$tmp/empty.img"
bad "too small (100 bytes)" "${k[@]}" "$tmp/tiny.img"
bad "(1000 bytes) is not a multiple of 512" "${k[@]}" "$tmp/odd.img"
bad "neither a regular file nor a block device" "${k[@]}" /dev/null
bad "--offset 2097152 is not inside" "${k[@]}" -o 2M "$tmp/disk.img"
bad "--offset 1048576 is not inside" "${k[@]}" -o 1M "$tmp/disk.img"
bad "--offset 100 is not a multiple of 512" "${k[@]}" -o 100 "$tmp/disk.img"
bad "invalid offset" "${k[@]}" -o -5 "$tmp/disk.img"
bad "'qcow2' is not supported" "${k[@]}" -f qcow2 "$tmp/disk.img"
bad "invalid --cache mode 'fast'" "${k[@]}" --cache=fast "$tmp/disk.img"
bad "invalid --discard mode 'on'" "${k[@]}" --discard=on "$tmp/disk.img"
bad "invalid --detect-zeroes mode 'maybe'" "${k[@]}" --detect-zeroes=maybe "$tmp/disk.img"
bad "--detect-zeroes=unmap needs --discard=unmap" "${k[@]}" --detect-zeroes=unmap "$tmp/disk.img"
bad "invalid --shared value '-1'" "${k[@]}" -e -1 "$tmp/disk.img"
bad "invalid --threads value '0'" "${k[@]}" -T 0 "$tmp/disk.img"
bad "invalid port '70000'" -p 70000 "$tmp/disk.img"
bad "cannot be combined" "${k[@]}" -p 10809 "$tmp/disk.img"
bad "unknown option '--bogus'" --bogus "$tmp/disk.img"
# -c and -d (the local kernel device; checked for real in the kernel suite's VM).
bad "-c/--connect cannot be combined with -p, -b, -k, --tls-creds or -d" -c /dev/nbd0 "${k[@]}" "$tmp/disk.img"
bad "cannot connect /dev/null: not an NBD device" -c /dev/null "$tmp/disk.img"
bad "cannot connect $tmp/no-nbd: No such file or directory" -c "$tmp/no-nbd" "$tmp/disk.img"
bad "cannot disconnect /dev/null: not an NBD device" -d /dev/null
bad "cannot open $tmp/no-nbd: No such file or directory" -d "$tmp/no-nbd"
bad "option '--port' needs a value" "$tmp/disk.img" --port
bad "no image file given" "${k[@]}"
bad "exactly one image file expected" "${k[@]}" "$tmp/disk.img" "$tmp/disk.img"
bad "cannot listen on 127.0.0.1 port $busy: Address already in use" -b 127.0.0.1 -p "$busy" "$tmp/disk.img"
[[ ! -e $tmp/never.sock ]] || fail "a failed start left its socket behind"

# Permissions, checked as an unprivileged user (root may open anything).
cp "$tmp/disk.img" "$tmp/ro.img" && chmod 444 "$tmp/ro.img"
cp "$tmp/disk.img" "$tmp/secret.img" && chmod 000 "$tmp/secret.img"
if ((EUID == 0)); then
	command -v setpriv >/dev/null || { echo "SKIP: setpriv (util-linux) is missing"; exit 77; }
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	# shellcheck source=../user-copy.bash
	source "$(dirname "$0")/../user-copy.bash"
	ql_built=$ql ql=$(user_copy "$ql" "$tmp/bin")
fi
bad "$tmp/ro.img is read-only (Permission denied): use -r/--read-only" "${k[@]}" "$tmp/ro.img"
bad "cannot open $tmp/secret.img: Permission denied" "${k[@]}" -r "$tmp/secret.img"
mkdir -m 1777 "$tmp/pub"
"${as_user[@]}" "$ql" -r -k "$tmp/pub/ro.sock" "$tmp/ro.img" &
pid=$!
pids+=("$pid")
wait_socket "$tmp/pub/ro.sock" "$pid"
[[ $(t nbdinfo --can read-only "$(uri "$tmp/pub/ro.sock")"; echo $?) == 0 ]] || fail "-r is not advertised"
as_user=() ql=${ql_built:-$ql}

# --help and --version.
help=$(t "$ql" --help)
for word in --port --bind --socket --export-name --description --read-only --snapshot --persistent \
	--shared --fork --pid-file --format --cache --discard --detect-zeroes --offset --verbose --threads; do
	grep -q -- "$word" <<<"$help" || fail "--help does not mention $word"
done
[[ $(t "$ql" --version) == "qemu-like "*"(nbdsdk "* ]] || fail "--version: $(t "$ql" --version)"

# Without -t the server serves one client and exits with status 0 when it leaves.
"$ql" -x disk -D 'a test image' -k "$tmp/a.sock" "$tmp/disk.img" &
pid=$!
pids+=("$pid")
wait_socket "$tmp/a.sock" "$pid"
json=$(t nbdinfo --json "$(uri "$tmp/a.sock" disk)")
grep -q '"export-name": "disk"' <<<"$json" || fail "-x not used: $json"
grep -q '"description": "a test image"' <<<"$json" || fail "-D not sent: $json"
grep -q '"export-size": 1048576' <<<"$json" || fail "wrong size: $json"
grep -q '"can_multi_conn": false' <<<"$json" || fail "multi-conn advertised with --shared=1: $json"
grep -q '"can_trim": false' <<<"$json" || fail "trim advertised without --discard=unmap: $json"
wait_exit "$pid"; [[ $exit_status == 0 ]] || fail "the server did not exit with status 0 after its last client"
[[ ! -e $tmp/a.sock ]] || fail "socket left behind after the last client"

# -t keeps serving; -e 2 advertises multi-conn and -o serves the file from the offset.
"$ql" -t -e 2 --discard=unmap -o 512K -k "$tmp/b.sock" "$tmp/disk.img" &
pid=$!
pids+=("$pid")
wait_socket "$tmp/b.sock" "$pid"
json=$(t nbdinfo --json "$(uri "$tmp/b.sock")")
grep -q '"can_multi_conn": true' <<<"$json" || fail "multi-conn not advertised with --shared=2: $json"
grep -q '"can_trim": true' <<<"$json" || fail "trim not advertised with --discard=unmap: $json"
[[ $(t nbdinfo --size "$(uri "$tmp/b.sock")") == 524288 ]] || fail "-o 512K does not shrink the export"
kill -0 "$pid" || fail "-t: the server exited after its clients"
kill -TERM "$pid"
wait_exit "$pid"; [[ $exit_status == 0 ]] || fail "SIGTERM: exit status not 0"

# Under a service manager: READY=1, the watchdog kept, STOPPING=1.
check_notify "$ql" -t -k "$tmp/n.sock" "$tmp/disk.img"

# TCP on loopback: a port that was free a moment ago.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ql" -t -b 127.0.0.1 -p "$port" "$tmp/disk.img" &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do t nbdinfo --can connect "nbd://127.0.0.1:$port" 2>/dev/null && break; sleep 0.1; done
[[ $(t nbdinfo --size "nbd://127.0.0.1:$port") == 1048576 ]] || fail "TCP does not serve"
kill -TERM "$pid"
wait_exit "$pid"; [[ $exit_status == 0 ]] || fail "SIGTERM over TCP: exit status not 0"

# --fork: the command returns once the server listens; the pid file names it;
# SIGTERM removes the pid file and the socket.
t "$ql" --fork -t --pid-file "$tmp/f.pid" -k "$tmp/f.sock" "$tmp/disk.img" || fail "--fork exited $?"
[[ -s $tmp/f.pid ]] || fail "--pid-file: no pid file"
pid=$(cat "$tmp/f.pid")
pids+=("$pid")
[[ $(t nbdinfo --size "$(uri "$tmp/f.sock")") == 1048576 ]] || fail "the forked server does not serve"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the forked server is still running 10 s after SIGTERM"
[[ ! -e $tmp/f.pid && ! -e $tmp/f.sock ]] || fail "pid file or socket left behind"

# Socket activation, with the service unit's own command line (%i = "disk").
command -v systemd-socket-activate >/dev/null || { echo "SKIP: systemd-socket-activate (systemd) is missing"; exit 77; }
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -ra words <<<"$exec_start"
[[ ${words[0]} == */qemu-like ]] || fail "the unit does not start qemu-like: $exec_start"
cmd=("$ql")
for w in "${words[@]:1}"; do cmd+=("${w//\/var\/lib\/qemu-like\/%i.img/$tmp/disk.img}"); done
[[ ${cmd[*]} == *"$tmp/disk.img"* ]] || fail "the unit does not serve /var/lib/qemu-like/%i.img: $exec_start"
systemd-socket-activate -l "$tmp/act.sock" "${cmd[@]}" 2>"$tmp/act.log" &
pid=$!
pids+=("$pid")
wait_socket "$tmp/act.sock" "$pid"
[[ $(t nbdinfo --size "$(uri "$tmp/act.sock")") == 1048576 ]] || fail "socket activation does not serve: $(cat "$tmp/act.log")"
[[ $(t nbdinfo --size "$(uri "$tmp/act.sock")") == 1048576 ]] || fail "a second activated connection failed"
kill -TERM "$pid"
wait_exit "$pid"; [[ $exit_status == 0 ]] || fail "the activated server did not exit with status 0 on SIGTERM"
# With activation, -k is refused: the error shows once the first client arrives.
systemd-socket-activate -l "$tmp/act2.sock" "$ql" -k "$tmp/x.sock" "$tmp/disk.img" 2>"$tmp/act2.log" &
pid=$!
pids+=("$pid")
wait_socket "$tmp/act2.sock" "$pid"
t nbdinfo --size "$(uri "$tmp/act2.sock")" 2>/dev/null && fail "an activated server with -k served"
wait_exit "$pid"; [[ $exit_status == 1 ]] || fail "an activated server with -k did not exit with status 1"
grep -q "cannot be used with systemd socket activation" "$tmp/act2.log" || fail "activation with -k: $(cat "$tmp/act2.log")"
echo "ok: qemu-like command line"
