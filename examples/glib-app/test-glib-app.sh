#!/bin/bash
# examples/glib-app: a GLib program serving NBD from its own main loop. A real
# client writes and reads back through it while the program's own GLib
# sources (a heartbeat, signal handlers) keep running, and SIGTERM ends it
# cleanly once the clients have left.
# Usage: test-glib-app.sh GLIB_APP
set -euo pipefail
app=$1
for tool in nbdinfo nbdcopy; do
        command -v $tool >/dev/null || { echo "SKIP: $tool is missing (libnbd-bin)"; exit 77; }
done
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

sock=$tmp/app.sock
uri="nbd+unix:///?socket=$sock"
"$app" "$sock" 64M > "$tmp/log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do
        grep -q "serving $uri" "$tmp/log" && break
        sleep 0.1
done
grep -q "serving $uri" "$tmp/log" || fail "glib-app did not start: $(cat "$tmp/log")"

size=$(t nbdinfo --size "$uri")
[ "$size" = 67108864 ] || fail "size $size, not 64M"
head -c 8M /dev/urandom > "$tmp/in"
t nbdcopy "$tmp/in" "$uri" || fail "nbdcopy into the app"
t nbdcopy "$uri" "$tmp/out" || fail "nbdcopy out of the app"
cmp -n 8388608 "$tmp/in" "$tmp/out" || fail "the first 8 MiB read back differ from what was written"
[ "$(tail -c +8388609 "$tmp/out" | tr -d '\0' | wc -c)" = 0 ] || fail "the rest of the disk is not zero"

# The program's own timer ran while it served, and saw the connections.
for _ in $(seq 50); do
        grep -q "0 connection(s) open, [1-9][0-9]* served" "$tmp/log" && break
        sleep 0.1
done
grep -q "0 connection(s) open, [1-9][0-9]* served" "$tmp/log" || fail "no heartbeat after serving: $(cat "$tmp/log")"

kill -TERM "$pid"
wait_exit "$pid"
[ "$exit_status" = 0 ] || fail "glib-app exited with $exit_status: $(cat "$tmp/log")"
grep -q "stopping" "$tmp/log" || fail "the SIGTERM handler (a GLib source) did not run"
grep -q "served [1-9][0-9]* connection(s)" "$tmp/log" || fail "no final count: $(cat "$tmp/log")"
[ ! -e "$sock" ] || fail "the socket file was left behind"
echo "ok: glib-app served a real client from the GLib loop and stopped on SIGTERM"
