#!/bin/bash
# xnbd-sync with its replicas and real clients: the first copy of the blocks
# that differ; writes (overlapping and in flight together, on several
# connections), write-zeroes, trims and flushes reaching every replica, byte
# for byte; the replica read-only to others while it follows, and writable
# after the primary's end (failover, SIGKILL and SIGTERM), and then refusing
# a primary that would copy over its own clients' changes; a lost replica and
# a silent one dropped while the primary serves on; refusals with a message:
# sizes that differ, a replica that follows already, has a writer, is a
# primary itself, is not an xnbd-sync server or is not there; a replica over
# TCP; the private option and command on the wire (bad length, command not
# negotiated); -t and bad settings.
# Usage: test-xnbd-sync.sh XNBD_SYNC
set -euo pipefail
xs=$1
py=/usr/bin/python3
for tool in nbdsh nbdinfo nbdkit; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing (libnbd-bin, nbdkit)"; exit 77; }
done
$py -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing"; exit 77; }
tmp_template=/dev/shm/xnbd-sync-test.XXXXXX
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

size=$((8 * 1024 * 1024 + 12345)) # 129 blocks of 64 KiB, the last one short
head -c "$size" /dev/urandom >"$tmp/a.img"

# serve NAME ARGS...: xnbd-sync on $tmp/NAME.sock in the background, its
# messages in $tmp/NAME.log, its PID in $pid and in pid_NAME.
serve() {
	local name=$1
	shift
	rm -f "$tmp/$name.sock"
	"$xs" -f -U "$tmp/$name.sock" "$@" 2>"$tmp/$name.log" &
	pid=$!
	pids+=("$pid")
	printf -v "pid_$name" %s "$pid"
	for _ in $(seq 100); do
		[ -S "$tmp/$name.sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || fail "xnbd-sync $* exited: $(cat "$tmp/$name.log")"
		sleep 0.1
	done
	fail "xnbd-sync $* is not listening after 10 s"
}
# stop PID NAME: SIGTERM, exit status 0.
stop() {
	kill "$1"
	wait_exit "$1"
	[ "$exit_status" = 0 ] || fail "xnbd-sync $2 exited with $exit_status after SIGTERM: $(cat "$tmp/$2.log")"
}
# wait_log NAME TEXT: TEXT appears in $tmp/NAME.log within 10 s.
wait_log() {
	for _ in $(seq 100); do
		grep -qF -- "$2" "$tmp/$1.log" && return 0
		sleep 0.1
	done
	fail "no \"$2\" from $1 in 10 s: $(cat "$tmp/$1.log")"
}
# refused EXPECTED ARGS...: xnbd-sync ARGS (a primary) exits 1 at start with
# a message that contains EXPECTED.
refused() {
	local expected=$1 rc=0
	shift
	rm -f "$tmp/r.sock"
	timeout 60 "$xs" -f -U "$tmp/r.sock" "$@" 2>"$tmp/r.log" || rc=$?
	[ "$rc" = 1 ] || fail "xnbd-sync $* exited with $rc, not 1: $(cat "$tmp/r.log")"
	grep -qF -- "$expected" "$tmp/r.log" || fail "xnbd-sync $*: no \"$expected\" in: $(cat "$tmp/r.log")"
}
same() {
	cmp "$tmp/$1" "$tmp/$2" >/dev/null || fail "$3: $1 and $2 differ"
}

# py SOCKET: Python on stdin, with NBD (libnbd) and wire helpers.
py_prelude='
import nbd, os, random, socket, struct, sys
SOCK = sys.argv[1]
def connect(sock=SOCK):
    h = nbd.NBD()
    h.connect_unix(sock)
    return h
def expect(what, ok):
    if not ok:
        sys.exit("FAIL: " + what)
# The wire, for what no client sends: a private option, a private command.
def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("the server closed the connection")
        b += c
    return b
def handshake(sock=SOCK):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    magic, opts, flags = struct.unpack(">QQH", recvn(s, 18))
    s.sendall(struct.pack(">I", 3))
    return s
def send_option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
def option_reply(s):
    magic, o, typ, n = struct.unpack(">QIII", recvn(s, 20))
    return typ, recvn(s, n)
def option(s, opt, data=b""):
    send_option(s, opt, data)
    return option_reply(s)
def go(s):
    send_option(s, 7, struct.pack(">IH", 0, 0))
    while True:
        typ, data = option_reply(s)
        if typ == 1:
            return
        expect("GO answered 0x%x %r" % (typ, data), typ == 3)
def command(s, typ, offset, length):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, typ, 42, offset, length))
    magic, error, cookie = struct.unpack(">IIQ", recvn(s, 16))
    expect("a simple reply to our request", magic == 0x67446698 and cookie == 42)
    return error
'
pyrun() {
	local sock=$1
	shift
	timeout 120 $py -c "$py_prelude$(cat)" "$tmp/$sock.sock" "$@" || fail "client checks failed (server log: $(cat "$tmp/$sock.log"))"
}

# --- The first copy: only the blocks that differ (3 of 129) go over.
cp "$tmp/a.img" "$tmp/b.img"
printf 'changed' | dd of="$tmp/b.img" bs=1 seek=0 conv=notrunc status=none
printf 'changed' | dd of="$tmp/b.img" bs=1 seek=$((5 * 65536 + 17)) conv=notrunc status=none
printf 'changed' | dd of="$tmp/b.img" bs=1 seek=$((size - 7)) conv=notrunc status=none
serve b "$tmp/b.img"
serve a "$tmp/a.img" replica="unix:$tmp/b.sock"
wait_log a "in sync: 3 of 129 blocks of 64 KiB differed and were copied"
wait_log b "following the primary on connection"
same a.img b.img "after the first copy"

# --- Changes reach the replica before they are acknowledged: after each
# client's last reply (no flush needed between), the files are the same.
pyrun a <<'EOF'
h = connect()
expect("the primary is writable", not h.is_read_only())
rnd = random.Random(1)
size = h.get_size()
# Overlapping writes in flight together: the replica must apply them in the
# primary's order.
cookies = []
for i in range(300):
    off = rnd.randrange(0, 1 << 20)
    cookies.append(h.aio_pwrite(rnd.randbytes(rnd.randrange(1, 40000)), off))
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    expect("write %d failed" % c, h.aio_command_completed(c))
h.pwrite(b"\xab" * 65536, size - 65536, nbd.CMD_FLAG_FUA)
h.zero(3 << 20, 1 << 20)                              # may punch holes
h.zero(200000, 2 << 20, nbd.CMD_FLAG_NO_HOLE)         # must not
h.trim(1 << 20, 6 << 20)
h.flush()
EOF
same a.img b.img "after writes, zeroes and trims"

# Four connections at once (the export offers multi-conn).
pyrun a <<'EOF'
hs = [connect() for _ in range(4)]
expect("multi-conn offered", hs[0].can_multi_conn())
rnd = random.Random(2)
for i in range(400):
    h = hs[i % 4]
    h.aio_pwrite(rnd.randbytes(4096), rnd.randrange(0, 64) * 4096)
for h in hs:
    while h.aio_in_flight() > 0:
        h.poll(-1)
EOF
same a.img b.img "after writes on four connections"

# Idle, the primary sleeps: its check for silent replicas runs only while
# changes wait for an answer (a second after the last, it has found none).
sleep 2.5
switches() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$pid_a/status"; }
before=$(switches)
sleep 3
woke=$(($(switches) - before))
[ "$woke" = 0 ] || fail "the idle primary woke $woke times in 3 s"

# While it follows, the replica serves others read-only, the same bytes.
pyrun b "$tmp/a.img" <<'EOF'
h = connect()
expect("the replica is read-only to others", h.is_read_only())
expect("the replica reads as the primary", h.pread(h.get_size(), 0) == open(sys.argv[2], "rb").read())
try:
    h.pwrite(b"x", 0)
    expect("a write to the replica was accepted", False)
except nbd.Error as e:
    expect("a write to the replica failed with " + str(e.errno), e.errno == "EPERM")
EOF

# --- Refusals by a replica that follows already, or whose size differs, and
# by a server that is not an xnbd-sync server.
cp "$tmp/a.img" "$tmp/c.img"
refused "this server follows a primary already (connection" "$tmp/c.img" replica="unix:$tmp/b.sock"
head -c 4M /dev/zero >"$tmp/small.img"
serve c "$tmp/c.img"
refused "the disks differ in size: the primary's has 4194304 bytes, this one $size" "$tmp/small.img" \
	replica="unix:$tmp/c.sock"
stop "$pid_c" c
rm -f "$tmp/k.sock"
nbdkit -f -U "$tmp/k.sock" memory "$size" &
pids+=($!)
pid_k=$!
for _ in $(seq 100); do [ -S "$tmp/k.sock" ] && break; sleep 0.1; done
refused "XNBD_SYNC is not supported (is this an xnbd-sync server?)" "$tmp/c.img" replica="unix:$tmp/k.sock"
kill "$pid_k"
refused "cannot connect: No such file or directory" "$tmp/c.img" replica="unix:$tmp/none.sock"
refused "cannot connect: Connection refused" "$tmp/c.img" replica="127.0.0.1:1"

# --- The wire: a bad XNBD_SYNC, the private command without it.
pyrun b "$tmp/a.img" <<'EOF'
s = handshake()
typ, msg = option(s, 0x78530001, b"1234")
expect("4 bytes of XNBD_SYNC: reply 0x%x" % typ, typ == 0x80000003)
expect("the message says what was wrong: %r" % msg, b"8 bytes" in msg)
go(s)
expect("XNBD_CMD_SUM without XNBD_SYNC did not fail with EINVAL", command(s, 0x7853, 0, 65536) == 22)
expect("a read after it failed", command(s, 0, 4096, 512) == 0)
expect("the read's data", recvn(s, 512) == open(sys.argv[2], "rb").read()[4096:4608])
s.close()
EOF

# --- Failover: the primary killed, the replica takes writes; its bytes are
# all the primary acknowledged.
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null || true
wait_log b "the primary (connection"
same a.img b.img "after the primary was killed"
pyrun b <<'EOF'
h = connect()
expect("the replica is writable after the failover", not h.is_read_only())
h.pwrite(b"after the failover", 4096)
h.flush()
EOF
# Following again would copy the old primary's data over that write.
refused "clients other than a primary have changed this disk since the server started" "$tmp/c.img" \
	replica="unix:$tmp/b.sock"
stop "$pid_b" b
[ "$(dd if="$tmp/b.img" bs=1 skip=4096 count=18 status=none)" = "after the failover" ] ||
	fail "the write after the failover is not in the replica's file"

# --- A replica lost, one silent: the primary drops each with a message and
# serves on; the others still get every change. SIGTERM ends the primary
# and the replica takes writes.
cp "$tmp/a.img" "$tmp/b.img"
cp "$tmp/a.img" "$tmp/c.img"
cp "$tmp/a.img" "$tmp/d.img"
serve b "$tmp/b.img"
serve c "$tmp/c.img"
serve d "$tmp/d.img"
serve a "$tmp/a.img" replica="unix:$tmp/b.sock" replica="unix:$tmp/c.sock" replica="unix:$tmp/d.sock" timeout=1
wait_log a "replica unix:$tmp/d.sock: in sync: 0 of 129 blocks"
kill -KILL "$pid_c"
kill -STOP "$pid_d"
pyrun a <<'EOF'
h = connect()
for i in range(20):
    h.pwrite(os.urandom(65536), i * 65536)
h.flush()
EOF
wait_log a "replica unix:$tmp/c.sock: dropped ("
wait_log a "changes are no longer copied to it"
wait_log a "replica unix:$tmp/d.sock: dropped (no answer for 1 s)"
kill -CONT "$pid_d"
same a.img b.img "with the other replicas lost"
stop "$pid_d" d
stop "$pid_a" a
wait_log b "the primary (connection"
pyrun b <<'EOF'
expect("the replica is writable after the primary's end", not connect().is_read_only())
EOF
stop "$pid_b" b

# --- A replica that has a writer, or replicates to another, is refused.
serve b "$tmp/b.img"
pyrun b <<'EOF' &
import time
h = connect()
expect("a writer before any primary", not h.is_read_only())
open(sys.argv[1] + ".writer", "w").close()
time.sleep(5)
EOF
writer=$!
for _ in $(seq 100); do [ -e "$tmp/b.sock.writer" ] && break; sleep 0.1; done
refused "1 other client(s) may write here; a replica takes writes from its primary only" "$tmp/d.img" \
	replica="unix:$tmp/b.sock"
wait "$writer"
serve c "$tmp/c.img" replica="unix:$tmp/b.sock"
refused "this server is a primary (it replicates to unix:$tmp/b.sock); it follows none" "$tmp/d.img" \
	replica="unix:$tmp/c.sock"
stop "$pid_c" c
stop "$pid_b" b

# --- A replica over TCP, named by host name (localhost: every address
# getaddrinfo gives is tried; the replica listens on 127.0.0.1 only).
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$xs" -f -b 127.0.0.1 -p "$port" "$tmp/c.img" 2>"$tmp/c.log" &
pid_c=$!
pids+=("$pid_c")
for _ in $(seq 100); do
	t nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1 && break
	sleep 0.1
done
serve a "$tmp/a.img" replica="localhost:$port"
wait_log a "replica localhost:$port: in sync"
pyrun a <<'EOF'
h = connect()
h.pwrite(os.urandom(300000), 12345)
EOF
same a.img c.img "with a replica over TCP"
stop "$pid_a" a
stop "$pid_c" c

# --- Settings.
refused "-t 2: xnbd-sync makes each change on its loop thread" -t 2 "$tmp/a.img"
refused "replica=nowhere: expected unix:PATH or HOST:PORT" "$tmp/a.img" replica=nowhere
refused "timeout=soon: expected seconds from 0 to 86400" "$tmp/a.img" timeout=soon
refused "the disk image is missing" replica="unix:$tmp/b.sock"
refused "cannot open $tmp/none.img" "$tmp/none.img"
echo "PASS"
