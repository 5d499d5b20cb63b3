#!/bin/bash
# The command line every nbdsdk_main() server shares, checked on the ramdisk:
# bad arguments, --help/--version, daemon mode with --pidfile and SIGTERM,
# sd_notify and the watchdog, --run and its exit status, -s (stdin), what -c
# refuses, --print-uri, TCP, -r, -e/-D.
# Usage: test-cli.sh RAMDISK
set -euo pipefail
ramdisk=$1
command -v nbdinfo >/dev/null || { echo "SKIP: nbdinfo (libnbd-bin) is missing"; exit 77; }
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

# Bad arguments: exit status 1 and one message naming the problem.
for args in "--bogus 1G" "foo=bar" "1X" "-p 99999 1G" "-t abc 1G" "-p 1 -U $tmp/x 1G" ""; do
        set +e
        # shellcheck disable=SC2086
        err=$(t "$ramdisk" $args 2>&1 >/dev/null)
        rc=$?
        set -e
        [ $rc -eq 1 ] || fail "'$args' exited $rc, not 1"
        [ -n "$err" ] || fail "'$args' printed no error"
        case $err in *Segmentation*|*Assert*|*runtime\ error*) fail "'$args' crashed: $err";; esac
done

# -c (the kernel's device, checked for real in the kernel suite's VM): what is
# refused here, with the message that says why, in the foreground and daemon modes.
refused_c() { # MESSAGE ARGS...
        local want=$1 rc=0 err
        shift
        err=$(t "$ramdisk" "$@" 2>&1 >/dev/null) || rc=$?
        [ $rc -eq 1 ] || fail "'$*' exited $rc, not 1"
        grep -q -- "$want" <<<"$err" || fail "'$*': no message matching '$want': $err"
}
refused_c "-c cannot be combined with -p, -U, -s, --run, --print-uri or socket activation" -c /dev/nbd0 -U "$tmp/c.sock" 1G
refused_c "-c cannot be combined with" -c /dev/nbd0 --run true 1G
refused_c "cannot connect /dev/null: not an NBD device" -f -c /dev/null 1G
refused_c "cannot connect /dev/null: not an NBD device" -c /dev/null 1G
refused_c "cannot connect $tmp/no-nbd: no such device (is the nbd module loaded? modprobe nbd)" -c "$tmp/no-nbd" 1G

# --help lists the standard options and the backend's own settings.
help=$(t "$ramdisk" --help)
for word in --port --unix --export-name --read-only --run --threads --connect size=SIZE; do
        grep -q -- "$word" <<<"$help" || fail "--help does not mention $word"
done
t "$ramdisk" --version | grep -q "nbdsdk" || fail "--version does not name nbdsdk"

# Daemon mode: the command returns once listening; SIGTERM stops the server
# and removes its socket and pidfile.
t "$ramdisk" -U "$tmp/d.sock" --pidfile "$tmp/d.pid" 64M
[ -s "$tmp/d.pid" ] || fail "no pidfile in daemon mode"
pid=$(cat "$tmp/d.pid")
pids+=("$pid")
[ "$(t nbdinfo --size "nbd+unix:///?socket=$tmp/d.sock")" = 67108864 ] || fail "daemon does not serve"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "daemon still running 10 s after SIGTERM"
[ ! -e "$tmp/d.sock" ] || fail "socket left behind after SIGTERM"
[ ! -e "$tmp/d.pid" ] || fail "pidfile left behind after SIGTERM"

# Under a service manager (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 once
# listening, WATCHDOG=1 from the loop every half interval, STOPPING=1.
check_notify "$ramdisk" -f -U "$tmp/n.sock" 1M

# --run: the environment, and the command's exit status becomes ours.
out=$(t "$ramdisk" -e 'my disk' 1M --run 'echo "$uri|$exportname|$unixsocket"')
case $out in "nbd+unix:///my%20disk?socket=/"*"|my disk|/"*) ;; *) fail "--run environment: $out";; esac
set +e
t "$ramdisk" 1M --run 'exit 7'
rc=$?
set -e
[ $rc -eq 7 ] || fail "--run exit status $rc, not 7"

# What the ramdisk offers a client (the SDK core's "done" list): fixed newstyle,
# structured replies, base:allocation, and every capability.
json=$(t "$ramdisk" 64M --run 'nbdinfo --json "$uri"')
grep -q '"protocol": "newstyle-fixed"' <<<"$json" || fail "not fixed newstyle"
grep -q '"structured": true' <<<"$json" || fail "no structured replies"
grep -q '"base:allocation"' <<<"$json" || fail "no base:allocation context"
for cap in can_flush can_fua can_trim can_zero can_fast_zero can_multi_conn can_cache can_df; do
        grep -q "\"$cap\": true" <<<"$json" || fail "$cap is not true"
done

# -r, -e and -D reach the client.
json=$(t "$ramdisk" -r -e ro -D 'a test disk' 1M --run 'nbdinfo --json "$uri"')
grep -q '"is_read_only": true' <<<"$json" || fail "-r not advertised"
grep -q '"export-name": "ro"' <<<"$json" || fail "-e not used"
grep -q '"description": "a test disk"' <<<"$json" || fail "-D not sent"

# -s: one client on stdin/stdout.
size=$(t nbdinfo --size "nbd+unix:///?socket=$tmp/none" 2>/dev/null || true)
[ -z "$size" ] || fail "unexpected server on $tmp/none"
if /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
        size=$(t /usr/bin/python3 -c "import nbd; h = nbd.NBD(); h.connect_command(['$ramdisk', '-s', '2M']); print(h.get_size()); h.shutdown()")
        [ "$size" = 2097152 ] || fail "-s served size '$size'"
fi

# TCP on loopback with a kernel-picked port, and --print-uri.
"$ramdisk" -f -b 127.0.0.1 -p 0 --print-uri 3M > "$tmp/uri" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/uri" ] && break; sleep 0.05; done
uri=$(cat "$tmp/uri")
case $uri in nbd://127.0.0.1:[0-9]*/) ;; *) fail "--print-uri printed '$uri'";; esac
[ "$(t nbdinfo --size "$uri")" = 3145728 ] || fail "TCP does not serve"
echo "ok: command line"
