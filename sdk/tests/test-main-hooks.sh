#!/bin/bash
# nbdsdk_main's start and stop hooks: start runs in the serving process
# (after the fork into the background), stop after the last connection, and
# a failing start ends the program with status 1; a --config file reaches a
# registered key, and a program without new_export serves one export.
# Usage: test-main-hooks.sh PROGRAM
set -euo pipefail
prog=$1
command -v nbdinfo >/dev/null || { echo "SKIP: nbdinfo (libnbd-bin) is missing"; exit 77; }
tmp=$(mktemp -d)
trap 'kill "$(cat "$tmp/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A key registered in setup is listed by --help and applied like any other.
timeout 10 "$prog" --help | grep -q "greeting=TEXT" || fail "--help does not list the registered key"
set +e
msg=$(timeout 10 "$prog" -f -U "$tmp/never" nosuchkey=1 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "unknown setting 'nosuchkey'" <<<"$msg" || fail "an unknown key: $rc $msg"

# Daemon mode: start runs in the child that serves, whose pid is the pidfile's.
timeout 30 "$prog" -U "$tmp/sock" --pidfile "$tmp/pid" trace="$tmp" greeting=hello
[ "$(cat "$tmp/greeting")" = hello ] || fail "the registered key's handler did not get its value"
[ "$(cat "$tmp/started")" = "$(cat "$tmp/pid")" ] || fail "start did not run in the serving process"
[ "$(timeout 10 nbdinfo --size "nbd+unix:///?socket=$tmp/sock")" = 1048576 ] || fail "not serving"
[ ! -e "$tmp/stopped" ] || fail "stop ran while serving"

# The metadata namespace registered in start is visible to a real client.
uri="nbd+unix:///?socket=$tmp/sock"
timeout 10 nbdinfo --list-meta-contexts "$uri" 2>/dev/null | grep -q 'x-hooks:odd' ||
        timeout 10 nbdinfo --json "$uri" | grep -q '"x-hooks:odd"' || fail "x-hooks:odd is not listed"
map=$(timeout 10 nbdinfo --map=x-hooks:odd "$uri")
want=$(printf '%s\n' "0 65536 0" "65536 65536 1" | head -2)
got=$(awk '{print $1, $2, $3}' <<<"$map" | head -2)
[ "$got" = "$want" ] || fail "nbdinfo --map=x-hooks:odd showed: $map"
# setup's 2 worker threads serve the reads, unless -t says otherwise (below).
first_byte() { timeout 10 nbdcopy -- "$1" - | head -c 1; }
[ "$(first_byte "$uri")" = W ] || fail "the worker threads set in setup do not serve the reads"
[ "$(cat "$tmp/threads")" = 2 ] || fail "start saw $(cat "$tmp/threads") worker threads, not setup's 2"
pid=$(cat "$tmp/pid")
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
[ "$(cat "$tmp/stopped" 2>/dev/null)" = "no connections" ] || fail "stop did not run after the last connection"

# -t 0 on the command line overrides setup's threads: the loop thread reads.
[ "$(timeout 30 "$prog" -t 0 trace="$tmp" --run 'nbdcopy -- "$uri" - | head -c 1')" = L ] ||
        fail "-t 0 did not override the threads set in setup"
[ "$(cat "$tmp/threads")" = 0 ] || fail "start saw $(cat "$tmp/threads") worker threads after -t 0"

# A failing start: exit status 1, a message, and no stop.
rm -f "$tmp/stopped"
set +e
msg=$(timeout 30 "$prog" -f -U "$tmp/sock2" trace="$tmp" fail=1 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] || fail "a failing start exited $rc, not 1"
grep -q "start refused" <<<"$msg" || fail "no message from the failing start: $msg"
[ ! -e "$tmp/stopped" ] || fail "stop ran although start failed"

# --config: a registered key applies in an export section (its handler got
# the export); a second export section needs new_export, which this lacks.
printf '[export first]\ntrace = %s\ngreeting = from the file\n' "$tmp" >"$tmp/one.conf"
[ "$(timeout 30 "$prog" --config "$tmp/one.conf" --run 'nbdinfo --size "$uri"')" = 1048576 ] ||
        fail "--config with one export does not serve"
[ "$(cat "$tmp/greeting")" = "from the file" ] || fail "the registered key did not apply from the file"
printf '[export first]\n[export second]\n' >"$tmp/two.conf"
set +e
msg=$(timeout 10 "$prog" -f -U "$tmp/never" --config "$tmp/two.conf" 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "two.conf:2: \[export second\]: this server serves a single export" <<<"$msg" ||
        fail "a second export without new_export: $rc $msg"
echo "ok: start and stop hooks"
