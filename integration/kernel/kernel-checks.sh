#!/bin/bash
# shellcheck disable=SC2317 # the functions below are called through lib.bash's check
# The checks of the kernel group.  Runs INSIDE the guest (run-guest.sh), as root: it
# starts the server under test there, attaches it to /dev/nbdN with the kernel's NBD
# client (nbd-client configures it over netlink), and uses it as a disk.
#
# Usage: kernel-checks.sh [--export NAME] [--timeout S] [--size BYTES] [--read-only 0|1]
#                         [--groups DIR] --server WORDS
#   WORDS: the server command as a bash-quoted word list, in which {socket} stands for
#   the Unix socket path (a word {listen} stands for "-U SOCKET").  It must stay in the
#   foreground.  Unless --read-only 1 says WORDS is already read-only, a second server
#   is started from WORDS with -r inserted after the program name, for the read-only
#   checks.  The export should be at least 128 MiB (a file system goes on it).
#   DIR: where lib.bash is (default: ../groups beside this script).
# Prints RESULT lines (groups/README.md) with client "nbd-client"; the note of a failed
# check names what was expected and what happened.
set -euo pipefail

groups_dir=$(dirname "$(readlink -f "$0")")/../groups
export_name=
timeout_s=60
size=$((64 << 20))
read_only=0
server=
while (($#)); do
    (($# >= 2)) || { echo "kernel-checks: $1 needs a value" >&2; exit 2; }
    case $1 in
    --export) export_name=$2 ;;
    --timeout) timeout_s=$2 ;;
    --size) size=$2 ;;
    --read-only) read_only=$2 ;;
    --groups) groups_dir=$2 ;;
    --server) server=$2 ;;
    *) echo "kernel-checks: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift 2
done
[[ -n $server ]] || { echo "kernel-checks: --server is required" >&2; exit 2; }

work=$(mktemp -d /run/kernel-checks.XXXXXX)
rw_socket=$work/rw.sock
ro_socket=$work/ro.sock
uri() { printf 'nbd+unix:///%s?socket=%s' "$export_name" "$1"; }

# lib.bash gives result/check/run/fail/finish; it reads its settings from NBDSDK_*.
export NBDSDK_URI NBDSDK_SIZE=$size NBDSDK_READ_ONLY=$read_only NBDSDK_TIMEOUT=$timeout_s
export NBDSDK_WORKDIR=$work NBDSDK_GROUPS_DIR=$groups_dir
NBDSDK_URI=$(uri "$rw_socket")
# shellcheck source-path=SCRIPTDIR source=../groups/lib.bash
source "$groups_dir/lib.bash"

# ---- servers and devices ----------------------------------------------------------
declare -A server_pid # by socket
mnt=$work/mnt
mkdir -p "$mnt"

cleanup() {
    local dev pid
    mountpoint -q "$mnt" && timeout 30 umount "$mnt"
    for dev in /dev/nbd0 /dev/nbd1; do
        attached "$dev" && timeout 30 nbd-client -d "$dev" >&2
    done
    for pid in "${server_pid[@]}"; do kill "$pid" 2>/dev/null; done
    return 0
}
trap cleanup EXIT

# start_server SOCKET WORDS...: start the server listening on SOCKET; wait until the
# socket exists.  Its pid goes to server_pid[SOCKET].
start_server() {
    local socket=$1 arg cmd=() deadline=$((SECONDS + timeout_s))
    shift
    for arg; do
        if [[ $arg == '{listen}' ]]; then
            cmd+=(-U "$socket")
        else
            cmd+=("${arg//\{socket\}/$socket}")
        fi
    done
    echo "+ ${cmd[*]}" >&2
    "${cmd[@]}" >"$socket.log" 2>&1 </dev/null &
    server_pid[$socket]=$!
    until [[ -S $socket ]]; do
        if ! kill -0 $! 2>/dev/null || ((SECONDS >= deadline)); then
            echo "kernel-checks: the server did not listen on $socket; its output:" >&2
            cat "$socket.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# server_alive SOCKET: fail unless the server started for SOCKET is still running.
server_alive() {
    kill -0 "${server_pid[$1]}" 2>/dev/null && return 0
    tail -n 20 "$1.log" >&2
    fail "the server died; its last words: $(tail -n 1 "$1.log")"
}

attached() { [[ -e /sys/block/${1#/dev/}/size && $(cat "/sys/block/${1#/dev/}/size") != 0 ]]; }

# attach DEV SOCKET [NBD-CLIENT OPTIONS]: connect the kernel client.
attach() {
    local dev=$1 socket=$2
    shift 2
    # Without -N, nbd-client asks for the default export "" (and warns about oldstyle).
    run nbd-client -unix "$socket" "$dev" ${export_name:+-N "$export_name"} -t "$timeout_s" "$@"
    attached "$dev" || fail "nbd-client returned, but $dev has no size"
}

# detach DEV: disconnect; the device must end up empty within the timeout.
detach() {
    local dev=$1 deadline=$((SECONDS + timeout_s))
    run nbd-client -d "$dev"
    while attached "$dev"; do
        ((SECONDS < deadline)) || fail "$dev still has a size ${timeout_s}s after nbd-client -d"
        sleep 0.1
    done
}

# tidy DEV: between phases, leave DEV unmounted and detached whatever a check left.
tidy() {
    if mountpoint -q "$mnt"; then timeout "$timeout_s" umount "$mnt" || true; fi
    if attached "$1"; then timeout "$timeout_s" nbd-client -d "$1" >&2 || true; fi
}

drop_caches() {
    sync
    run blockdev --flushbufs "$1"
    echo 3 >/proc/sys/vm/drop_caches
}

# mounted: fail unless the NBD device is what is mounted on $mnt (otherwise the files
# would land on the tmpfs beneath).
mounted() {
    [[ $(findmnt -n -o SOURCE "$mnt") == /dev/nbd0 ]] || fail "/dev/nbd0 is not mounted on $mnt"
}

# md5_of DEV OFFSET_MIB COUNT_MIB [CPU]: checksum of a range, read with O_DIRECT.
md5_of() {
    local cpu=${4:-0}
    run taskset -c "$cpu" dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | md5sum | cut -d' ' -f1
}

# socket_ends PREFIX: the `ss -xn` lines of the connections to the servers listening on
# paths that start with PREFIX: the servers' ends (which carry the path), then the
# kernel's (their peers).
socket_ends() {
    ss -xn | awk -v w="$1" '
        NR > 1 { line[NR] = $0; peer[NR] = $8 }
        NR > 1 && index($5, w) == 1 { server[$6] = 1; print }
        END { for (i in line) if (peer[i] in server) print line[i] }'
}

# diagnose TITLE: note what the guest can tell about a check in trouble: the requests
# the kernel has in flight, the bytes waiting in both ends of every connection (Recv-Q
# of a server's end: requests the server has not read; of the kernel's end: replies
# the kernel has not read), where the kernel's threads that run NBD code wait (their
# stacks: a receive worker not in a socket read is not reading replies), the servers'
# last words, the kernel's, and its busy workqueues.  Printed at the end of the run,
# where the harness's log shows it.
diagnose() {
    local dev socket task trace comm
    echo "--- $1"
    for dev in /dev/nbd0 /dev/nbd1; do
        attached "$dev" && echo "$dev requests in flight (reads writes): $(cat "/sys/block/${dev#/dev/}/inflight")"
    done
    if have ss; then
        ss -xn | sed -n 1p
        socket_ends "$work"
    fi
    # read, not cat: a process start costs the emulated guest up to half a second, and
    # there are a hundred tasks.
    for task in /proc/[0-9]*; do
        { IFS= read -r -d '' trace || [[ -n $trace ]]; } <"$task/stack" 2>/dev/null || continue
        read -r comm <"$task/comm" 2>/dev/null || continue
        # Each nbdN's idle rescuer thread says nothing about the hang (a busy one does).
        [[ $trace$comm == *nbd* && ($trace != *rescuer_thread* || $trace == *recv_work*) ]] && printf 'kernel stack of %s (%s):\n%s' "$task" "$comm" "$trace"
    done
    for socket in "${!server_pid[@]}"; do
        echo "server on $socket, last lines of its output:"
        tail -n 8 "$socket.log"
    done
    echo "kernel messages, last lines:"
    dmesg | tail -n 12
    # SysRq t logs every task's state, then the busy workqueues: which worker (or
    # RESCUER) runs which work item, and what is pending.  Only the latter is printed;
    # the kernel's log is cleared after it, so the next snapshot's last lines are new.
    if echo t 2>/dev/null >/proc/sysrq-trigger; then
        echo "busy workqueues (SysRq t):"
        dmesg | awk '/Showing busy workqueues/ { on = 1 } on && n++ < 24'
        dmesg -C
    fi
}

# checked CLIENT NAME FUNCTION [ARGS...]: check, with diagnostics if it fails.  A hang
# is best seen while it lasts: the kernel gives up on a request when the check's own
# commands time out.  So a snapshot is taken at three quarters of the timeout, and
# kept if the check then fails.
checked() {
    local failed=$checks_failed name=$2 watchdog stall=$work/.stall
    rm -f "$stall"
    (
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
        sleep $((timeout_s * 3 / 4)) &
        sleeper=$!
        wait "$sleeper"
        diagnose "nbd-client/$name still running after $((timeout_s * 3 / 4))s" >"$stall" 2>&1
    ) &
    watchdog=$!
    check "$@"
    kill "$watchdog" 2>/dev/null || true # it may have finished
    wait "$watchdog" 2>/dev/null || true
    if ((checks_failed != failed)); then
        [[ -s $stall ]] && cat "$stall" >>"$work/diagnostics"
        diagnose "nbd-client/$name failed" >>"$work/diagnostics" 2>&1
    fi
}

# ---- checks ------------------------------------------------------------------------
check_size() { # DEV SOCKET
    have nbdinfo || fail "missing tool: nbdinfo (the reference for the export size)"
    expect_eq "blockdev --getsize64 $1 (vs nbdinfo --size)" \
        "$(run blockdev --getsize64 "$1")" "$(run nbdinfo --size "$(uri "$2")")"
}

# kernel_unread SOCKET: bytes waiting in the kernel's ends of its connections to the
# server on SOCKET, that is replies the server sent and the kernel has not read.
kernel_unread() {
    socket_ends "$1" | awk -v s="$1" '$5 != s { n += $3 } END { print n + 0 }'
}

# gone PID DEADLINE: true once process PID (a child) has ended, false if it still runs
# at $SECONDS DEADLINE.
gone() {
    while kill -0 "$1" 2>/dev/null; do
        ((SECONDS < $2)) || return 1
        sleep 0.1
    done
}

# Debian 12's kernel (6.1) with two connections now and then never reads the replies on
# one of them: they wait in the kernel's end of the socket and every request sent on
# that connection hangs until it times out (seen with qemu-nbd as the server as well).
# The cause, seen in the guest's kernel stacks and workqueue state (printed when it
# strikes here): each connection's receive loop is a work item that runs until the
# disconnect, on a workqueue with a rescuer thread; when a new worker thread is slow to
# start (an emulated guest on a busy host), the rescuer takes both items and runs the
# first, which never ends.  It has struck inside nbd-client, at the first open's
# partition read, at the first read on the second connection, and at the first writes
# of multi-conn-io (CI of 67e57aa; CI of 64e8032 after multi-conn-connect's read from
# each CPU had been answered: how the rescuer came to hold a connection after that is
# not known yet; diagnose prints the workqueues' state for that).  So every step on
# the two connections runs under `guarded`, and a hang with a reply waiting unread in
# the kernel's end ends in a reconnect.

# guarded SECONDS FUNCTION [ARGS...]: run FUNCTION in the background; true once it has
# passed.  If it fails, the check fails with its note.  If it still runs after SECONDS:
# with a reply waiting unread in the kernel's end of a connection, the state is logged,
# the device is disconnected (which fails the hung requests, so FUNCTION ends) and this
# returns false; with no reply waiting, the check fails: the server did not answer.
guarded() {
    local job note=$work/.guarded unread
    "${@:2}" 3>"$note" &
    job=$!
    if gone "$job" $((SECONDS + $1)); then
        wait "$job" && return 0
        cat "$note" >&3
        exit 1
    fi
    unread=$(kernel_unread "$rw_socket")
    ((unread >= 16)) || { kill "$job"; fail "$2 still running after $1 s, with no reply waiting for the kernel"; }
    diagnose "$2: the kernel left a reply unread ($unread bytes); connecting again" >&2
    detach /dev/nbd0
    wait || true # FUNCTION's commands, ended by the disconnect
    return 1
}

# first_reads: a 4 KiB read from each CPU, so one on each connection: nbd sends a CPU's
# requests on the connection of its blk-mq queue.  Then the device must go idle.
first_reads() {
    local cpu reader readers=() reads writes
    for cpu in 0 1; do
        taskset -c "$cpu" dd if=/dev/nbd0 of=/dev/null bs=4k skip="$cpu" count=1 iflag=direct status=none &
        readers+=($!)
    done
    for reader in "${readers[@]}"; do
        wait "$reader" || fail "a first read of /dev/nbd0 failed"
    done
    until read -r reads writes </sys/block/nbd0/inflight && ((reads + writes == 0)); do sleep 0.1; done
}

# connect_two: nbd-client -C 2 on /dev/nbd0, then first_reads, 15 s each; at most three
# attempts.
connect_two() {
    local attempt
    for attempt in 1 2 3; do
        guarded 15 run nbd-client -unix "$rw_socket" /dev/nbd0 ${export_name:+-N "$export_name"} \
            -t "$timeout_s" -C 2 || continue
        attached /dev/nbd0 || fail "nbd-client returned, but /dev/nbd0 has no size"
        guarded 15 first_reads && return 0
    done
    fail "the kernel's requests on two connections hung 3 times"
}

check_multi_conn_connect() {
    local count deadline
    connect_two
    # Accepted sockets carry the listening path in /proc/net/unix; state 03 = connected.
    deadline=$((SECONDS + timeout_s))
    while count=$(awk -v p="$rw_socket" '$8 == p && $6 == "03"' /proc/net/unix | wc -l) &&
        ((count != 2 && SECONDS < deadline)); do
        sleep 0.1
    done
    expect_eq "connections to the server after nbd-client -C 2" "$count" 2
}

# Each CPU has its own blk-mq queue, and nbd sends each queue's requests on its own
# connection: writing from one CPU and reading back from the other crosses
# connections, which CAN_MULTI_CONN promises is consistent after a flush.
cross_io() {
    run taskset -c 0 dd if="$work/a" of=/dev/nbd0 bs=1M seek=0 oflag=direct status=none &
    local writer_a=$!
    run taskset -c 1 dd if="$work/b" of=/dev/nbd0 bs=1M seek=32 oflag=direct status=none
    wait "$writer_a"
    drop_caches /dev/nbd0
    expect_eq "first 16 MiB written on CPU 0, read on CPU 1" \
        "$(md5_of /dev/nbd0 0 16 1)" "$(md5sum <"$work/a" | cut -d' ' -f1)"
    expect_eq "16 MiB at 32 MiB written on CPU 1, read on CPU 0" \
        "$(md5_of /dev/nbd0 32 16 0)" "$(md5sum <"$work/b" | cut -d' ' -f1)"
}

# cross_io gets a minute (a few seconds in an emulated guest on a busy host); after a
# reconnect, all of it runs again.
check_multi_conn_io() {
    local attempt
    head -c $((16 << 20)) /dev/urandom >"$work/a"
    head -c $((16 << 20)) /dev/urandom >"$work/b"
    for attempt in 1 2 3; do
        ((attempt == 1)) || connect_two
        if guarded 60 cross_io; then
            detach /dev/nbd0
            return 0
        fi
    done
    fail "the kernel's requests on two connections hung 3 times"
}

# A few hundred small files in nested directories plus some MiB-sized ones, checksummed
# on the tmpfs before they are copied to the NBD-backed file system.  One perl process
# writes them all: every process start costs about 0.1 s in the emulated guest.
check_write_tree() {
    local src=$work/tree
    mkdir "$src"
    perl -e '
        my ($src) = @ARGV;
        open(my $random, "<", "/dev/urandom") or die "/dev/urandom: $!";
        sub put { my ($path, $size) = @_; my $data = "";
            read($random, $data, $size) == $size or die "short read";
            open(my $f, ">", $path) or die "$path: $!"; print $f $data; close($f) or die }
        for my $d (1 .. 10) {
            mkdir("$src/d$d"); mkdir("$src/d$d/sub") or die "mkdir: $!";
            put("$src/d$d/f$_", 1 + int(rand(65536))) for 1 .. 30;
            put("$src/d$d/sub/empty", 0);
        }
        put("$src/big$_", $_ * 1048576 + $_ * 4099) for 1 .. 4;
    ' "$src"
    mounted
    (cd "$src" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$work/sums"
    run cp -a "$src/." "$mnt/"
    run sync
    expect_eq "files on the mounted export" "$(find "$mnt" -type f | wc -l)" "$(wc -l <"$work/sums")"
}

check_verify_tree() {
    mounted
    (cd "$mnt" && run md5sum -c --quiet "$work/sums") >&2 || fail "checksums differ after remount"
}

check_disconnect_idle() { # DEV SOCKET
    if mountpoint -q "$mnt"; then run umount "$mnt"; fi
    detach "$1"
    server_alive "$2"
}

# sweep write|read MIB: up to 20 passes over the first MIB MiB of /dev/nbd0, in the
# background of check_disconnect_busy.  Exits 0 at the first pass that fails or comes
# up short (the disconnect got it), 124 if a pass hung, 3 if all 20 passes completed.
sweep() {
    set +eE
    trap - ERR
    local i rc bytes
    for ((i = 0; i < 20; i++)); do
        if [[ $1 == write ]]; then
            timeout -k 5 "$timeout_s" dd if=/dev/zero of=/dev/nbd0 bs=1M count="$2" oflag=direct status=none
            rc=$?
        else
            bytes=$(timeout -k 5 "$timeout_s" dd if=/dev/nbd0 bs=1M count="$2" iflag=direct status=none | wc -c)
            rc=$?
            ((rc != 0 || bytes == $2 << 20)) || exit 0
        fi
        ((rc != 124 && rc != 137)) || exit 124
        ((rc == 0)) || exit 0
    done
    exit 3
}

# Disconnect while a writer and a reader keep the device busy.  Nothing may hang, the
# load must have been cut off, and the device must end up empty.
check_disconnect_busy() {
    local mib=$((size >> 20)) writer reader rc_w=0 rc_r=0 stat deadline=$((SECONDS + timeout_s))
    attach /dev/nbd0 "$rw_socket"
    sweep write "$mib" &
    writer=$!
    sweep read "$mib" &
    reader=$!
    # Wait until at least 4 MiB went each way (fields 3 and 7: sectors read, written).
    until read -ra stat </sys/block/nbd0/stat && ((stat[2] >= 8192 && stat[6] >= 8192)); do
        ((SECONDS < deadline)) || fail "the load did not get going within ${timeout_s}s"
        sleep 0.1
    done
    if ! kill -0 "$writer" 2>/dev/null || ! kill -0 "$reader" 2>/dev/null; then
        fail "the load ended before the disconnect"
    fi
    detach /dev/nbd0
    wait "$writer" || rc_w=$?
    wait "$reader" || rc_r=$?
    ((rc_w != 124 && rc_r != 124)) || fail "I/O hung after nbd-client -d (writer $rc_w, reader $rc_r; 124 = timed out)"
    ((rc_w == 0 && rc_r == 0)) || fail "the disconnect did not cut off the load (writer $rc_w, reader $rc_r)"
}

check_server_survives() {
    server_alive "$rw_socket"
    attach /dev/nbd0 "$rw_socket"
    md5_of /dev/nbd0 0 1 >/dev/null
    detach /dev/nbd0
}

check_read_only() { # DEV
    expect_eq "blockdev --getro $1 (the server advertised READ_ONLY)" "$(run blockdev --getro "$1")" 1
    local before after
    before=$(md5_of "$1" 0 1)
    if run dd if=/dev/zero of="$1" bs=4096 count=1 oflag=direct status=none; then
        fail "a write to the read-only $1 succeeded"
    fi
    after=$(md5_of "$1" 0 1)
    expect_eq "first MiB after the refused write" "$after" "$before"
}

# check_reads_match DEV SOCKET: the first --size bytes (whole MiB, at most the export)
# read through the kernel are the bytes libnbd's nbdcopy reads from the same server.
check_reads_match() {
    have nbdcopy || fail "missing tool: nbdcopy (the reference for the data)"
    local mib
    mib=$(($(run blockdev --getsize64 "$1") >> 20))
    ((mib <= size >> 20)) || mib=$((size >> 20))
    ((mib > 0)) || fail "the export is smaller than 1 MiB"
    expect_eq "md5 of the first $mib MiB read through the kernel (vs nbdcopy)" "$(md5_of "$1" 0 "$mib")" \
        "$(run sh -c 'nbdcopy -- "$1" - | head -c "$2" | md5sum' sh "$(uri "$2")" $((mib << 20)) | cut -d' ' -f1)"
}

# ---- the run -----------------------------------------------------------------------
eval "server_words=($server)"
if ((read_only)); then
    ro_words=("${server_words[@]}")
else
    ro_words=("${server_words[0]}" -r "${server_words[@]:1}")
    start_server "$rw_socket" "${server_words[@]}" || result fail nbd-client server-start "the server did not start; see log"

    # nbdinfo --can: 0 advertised, 2 not advertised, other: it could not tell.
    multi_conn=127
    if have nbdinfo; then
        multi_conn=0
        run nbdinfo --can multi-conn "$NBDSDK_URI" || multi_conn=$?
    fi
    case $multi_conn in
    0)
        checked nbd-client multi-conn-connect check_multi_conn_connect
        checked nbd-client multi-conn-io check_multi_conn_io
        ;;
    2) result pass nbd-client multi-conn "the server does not advertise CAN_MULTI_CONN: not attempted" ;;
    127) result skip nbd-client multi-conn "missing tool: nbdinfo (to see whether CAN_MULTI_CONN is advertised)" ;;
    *) result fail nbd-client multi-conn "nbdinfo --can multi-conn failed with status $multi_conn" ;;
    esac
    tidy /dev/nbd0

    checked nbd-client connect attach /dev/nbd0 "$rw_socket"
    checked nbd-client size check_size /dev/nbd0 "$rw_socket"
    checked nbd-client mkfs run mkfs.ext4 -q -F /dev/nbd0
    checked nbd-client mount run mount -t ext4 /dev/nbd0 "$mnt"
    checked nbd-client write-tree check_write_tree
    checked nbd-client umount run umount "$mnt"
    drop_caches /dev/nbd0 || true
    checked nbd-client fsck run e2fsck -fn /dev/nbd0
    checked nbd-client remount run mount -t ext4 /dev/nbd0 "$mnt"
    checked nbd-client verify-tree check_verify_tree
    checked nbd-client disconnect-idle check_disconnect_idle /dev/nbd0 "$rw_socket"
    tidy /dev/nbd0

    checked nbd-client disconnect-busy check_disconnect_busy
    tidy /dev/nbd0
    checked nbd-client server-survives check_server_survives
    tidy /dev/nbd0
fi

start_server "$ro_socket" "${ro_words[@]}" || result fail nbd-client ro-server-start "the read-only server did not start; see log"
checked nbd-client ro-connect attach /dev/nbd1 "$ro_socket"
((read_only == 0)) || checked nbd-client size check_size /dev/nbd1 "$ro_socket"
((read_only == 0)) || checked nbd-client ro-read check_reads_match /dev/nbd1 "$ro_socket"
checked nbd-client ro-write-refused check_read_only /dev/nbd1
checked nbd-client ro-disconnect check_disconnect_idle /dev/nbd1 "$ro_socket"
[[ -s $work/diagnostics ]] && cat "$work/diagnostics" >&2
finish
