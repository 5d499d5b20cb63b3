# shellcheck shell=bash disable=SC2034  # sourced by bench/run, which uses the variables
# The client workloads bench/run measures, sourced by it.
#
# Inputs (set by bench/run): TIME (seconds per timed workload), SIZE (export
# bytes), SRC (a tmpfs file of SIZE random bytes), WORK, ECHO, BENCH.

ALL_WORKLOADS=(randread-4k-qd1 randread-4k-qd16 randwrite-4k-qd16
               read-1m-qd8 write-1m-qd8 randread-4k-qd16-2conn
               nbdcopy-in nbdcopy-out qemu-img-read qemu-img-write)

# qemu-img bench counts requests instead of running for a time: a first run
# of this many requests measures the rate, the measured run does TIME
# seconds' worth of them.
QEMU_IMG_PROBE=2000

# workload_unit NAME: the figure the workload is judged by, iops or bw.
workload_unit()
{
    case $1 in
        read-1m*|write-1m*|nbdcopy-*) echo bw ;;
        *) echo iops ;;
    esac
}

# workload_writes NAME: true when the workload writes (not run against
# read-only servers).
workload_writes()
{
    case $1 in
        *write*|nbdcopy-in) return 0 ;;
        *) return 1 ;;
    esac
}

# workload_echo NAME: the limit row's echo for the workload, as
# "REQUEST_BYTES RESPONSE_BYTES DEPTH CONNECTIONS PAYLOAD_BYTES", shaped like
# the NBD traffic (28-byte request header, 16-byte reply header); nothing
# when the workload has no echo equivalent.
workload_echo()
{
    local k=4096 m=1048576
    case $1 in
        randread-4k-qd1)        echo "28 $((16 + k)) 1 1 $k" ;;
        randread-4k-qd16)       echo "28 $((16 + k)) 16 1 $k" ;;
        randwrite-4k-qd16)      echo "$((28 + k)) 16 16 1 $k" ;;
        read-1m-qd8)            echo "28 $((16 + m)) 8 1 $m" ;;
        write-1m-qd8)           echo "$((28 + m)) 16 8 1 $m" ;;
        randread-4k-qd16-2conn) echo "28 $((16 + k)) 16 2 $k" ;;
    esac
}

# Prints "OPS BYTES SECONDS" for one fio run: fio_run URI RW BS DEPTH JOBS
fio_run()
{
    local uri=$1 rw=$2 bs=$3 depth=$4 jobs=$5
    timeout $((TIME + 60)) fio --name=bench --ioengine=nbd --uri="$uri" \
        --rw="$rw" --bs="$bs" --iodepth="$depth" --numjobs="$jobs" \
        --group_reporting --time_based --runtime="$TIME" \
        --norandommap --randrepeat=0 \
        --output-format=json --output="$WORK/fio.json" > "$WORK/client.log" 2>&1 ||
        return 1
    /usr/bin/python3 "$BENCH/fio-result.py" "$WORK/fio.json"
}

# Prints "OPS BYTES SECONDS" for one timed command (OPS "-": not reported).
copy_run()
{
    local start=$EPOCHREALTIME
    timeout $((TIME * 10 + 120)) "$@" > "$WORK/client.log" 2>&1 || return 1
    awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$SIZE" \
        'BEGIN { printf "- %d %.6f\n", n, b - a }'
}

# Prints "SECONDS" of one qemu-img bench run: qemu_img_bench COUNT URI [-w ...]
qemu_img_bench()
{
    local count=$1 uri=$2
    shift 2
    timeout $((TIME * 4 + 60)) qemu-img bench -f raw -d 16 -s 4096 \
        -c "$count" "$@" "$uri" > "$WORK/client.log" 2>&1 || return 1
    sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p' "$WORK/client.log" | grep .
}

# Prints "OPS BYTES SECONDS" for qemu-img bench: qemu_img_run URI [-w ...]
qemu_img_run()
{
    local uri=$1 probe count secs
    shift
    probe=$(qemu_img_bench "$QEMU_IMG_PROBE" "$uri" "$@") || return 1
    count=$(awk -v p="$probe" -v n="$QEMU_IMG_PROBE" -v t="$TIME" \
            'BEGIN { c = int(n * t / (p > 0.001 ? p : 0.001)); print (c > n ? c : n) }')
    secs=$(qemu_img_bench "$count" "$uri" "$@") || return 1
    echo "$count $((count * 4096)) $secs"
}

# workload_run NAME URI: runs the client once, prints "OPS BYTES SECONDS".
workload_run()
{
    local uri=$2
    case $1 in
        randread-4k-qd1)        fio_run "$uri" randread 4k 1 1 ;;
        randread-4k-qd16)       fio_run "$uri" randread 4k 16 1 ;;
        randwrite-4k-qd16)      fio_run "$uri" randwrite 4k 16 1 ;;
        read-1m-qd8)            fio_run "$uri" read 1m 8 1 ;;
        write-1m-qd8)           fio_run "$uri" write 1m 8 1 ;;
        randread-4k-qd16-2conn) fio_run "$uri" randread 4k 16 2 ;;
        nbdcopy-in)             copy_run nbdcopy "$SRC" "$uri" ;;
        # Into nbdcopy's discarding null: destination, because it truncates
        # a destination file and refilling fresh tmpfs pages would measure
        # the machine's page faults rather than the server.
        nbdcopy-out)            copy_run nbdcopy "$uri" null: ;;
        qemu-img-read)          qemu_img_run "$uri" ;;
        qemu-img-write)         qemu_img_run "$uri" -w --pattern=165 ;;
        *) echo "bench: unknown workload '$1'" >&2; return 1 ;;
    esac
}

# echo_run ADDRESS NAME: the limit row for workload NAME against the echo
# server at ADDRESS (unix:PATH or tcp:PORT); prints "OPS BYTES SECONDS".
echo_run()
{
    local addr=$1 req resp depth conns payload ops secs
    read -r req resp depth conns payload <<< "$(workload_echo "$2")"
    # A command substitution, not a process substitution: the client is
    # reaped before this returns, so its CPU time counts as the client's.
    read -r ops secs <<< "$(timeout $((TIME + 30)) "$ECHO" client "$addr" \
                            "$req" "$resp" "$depth" "$conns" "$TIME")"
    [[ -n ${secs:-} ]] || return 1
    echo "$ops $((ops * payload)) $secs"
}
