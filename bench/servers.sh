# shellcheck shell=bash disable=SC2034  # sourced by bench/run, which uses the variables
# The servers bench/run knows, sourced by it.  To add a server (an nbdsdk
# example as it lands, say), give it a line in server_info and a branch in
# server_command; nothing else changes.
#
# Inputs (set by bench/run): WORK (tmpfs directory), DISK (the tmpfs file a
# file server exports: each has its own copy of the same data), GZ (the gzip
# file the gzip servers share, read-only), SIZE (bytes), RAMDISK, QEMU_LIKE,
# GZNBD, XNBD_SYNC, ECHO (binaries; the limit row's echo is built from
# bench/echo.c with cc).

# Default order; "limit" is the echo program of the limit row.
ALL_SERVERS=(ramdisk ramdisk-t2 nbdkit-memory nbdkit-null
             qemu-like xnbd-sync xnbd-sync-replica qemu-nbd nbdkit-file nbd-server
             gznbd nbdkit-gzip limit)

# server_info NAME: sets
#   SRV_CLASS  memory (its own RAM) | file (serves $DISK) |
#              gzip (serves $GZ, read-only) | limit
#   SRV_ROLE   ours (nbdsdk) | peer (what ours is compared to) |
#              floor (does no storage work: a bound, not a peer) | limit
#   SRV_TOOL   the program that must exist for the server to run
#   SRV_FORKS  1 when it serves each connection in a child process
server_info()
{
    SRV_FORKS=0
    case $1 in
        ramdisk|ramdisk-t2) SRV_CLASS=memory SRV_ROLE=ours SRV_TOOL=$RAMDISK ;;
        nbdkit-memory)      SRV_CLASS=memory SRV_ROLE=peer SRV_TOOL=nbdkit ;;
        nbdkit-null)        SRV_CLASS=memory SRV_ROLE=floor SRV_TOOL=nbdkit ;;
        qemu-like)          SRV_CLASS=file SRV_ROLE=ours SRV_TOOL=$QEMU_LIKE ;;
        xnbd-sync*)         SRV_CLASS=file SRV_ROLE=ours SRV_TOOL=$XNBD_SYNC ;;
        qemu-nbd)           SRV_CLASS=file SRV_ROLE=peer SRV_TOOL=qemu-nbd ;;
        nbdkit-file)        SRV_CLASS=file SRV_ROLE=peer SRV_TOOL=nbdkit ;;
        nbd-server)         SRV_CLASS=file SRV_ROLE=peer SRV_TOOL=nbd-server
                            SRV_FORKS=1 ;;
        gznbd)              SRV_CLASS=gzip SRV_ROLE=ours SRV_TOOL=$GZNBD ;;
        nbdkit-gzip)        SRV_CLASS=gzip SRV_ROLE=peer SRV_TOOL=nbdkit ;;
        limit)              SRV_CLASS=limit SRV_ROLE=limit SRV_TOOL=cc ;;
        *) echo "bench: unknown server '$1'" >&2; return 1 ;;
    esac
}

# server_command NAME TRANSPORT SOCKET PORT: sets
#   SRV_CMD      the command line (foreground unless SRV_PIDFILE is set)
#   SRV_EXPORT   the export name clients ask for
#   SRV_PIDFILE  where a server that daemonizes writes its process id
# TRANSPORT is unix (listen on SOCKET) or tcp (listen on 127.0.0.1:PORT).
server_command()
{
    local name=$1 transport=$2 sock=$3 port=$4
    local -a listen
    SRV_EXPORT="" SRV_PIDFILE=""
    case $name in
        ramdisk*|gznbd|xnbd-sync*)
            if [[ $transport == unix ]]; then listen=(-U "$sock")
            else listen=(-b 127.0.0.1 -p "$port"); fi ;;
        nbdkit-*)
            if [[ $transport == unix ]]; then listen=(-U "$sock")
            else listen=(-i 127.0.0.1 -p "$port"); fi ;;
        qemu-nbd|qemu-like)
            if [[ $transport == unix ]]; then listen=(-k "$sock")
            else listen=(-b 127.0.0.1 -p "$port"); fi ;;
    esac
    case $name in
        ramdisk)       SRV_CMD=("$RAMDISK" -f --exit-with-parent "${listen[@]}" "$SIZE") ;;
        ramdisk-t2)    SRV_CMD=("$RAMDISK" -f --exit-with-parent -t 2 "${listen[@]}" "$SIZE") ;;
        nbdkit-memory) SRV_CMD=(nbdkit -f --exit-with-parent "${listen[@]}" memory "$SIZE") ;;
        nbdkit-null)   SRV_CMD=(nbdkit -f --exit-with-parent "${listen[@]}" null "$SIZE") ;;
        nbdkit-file)   SRV_CMD=(nbdkit -f --exit-with-parent "${listen[@]}" file "$DISK") ;;
        # nbdkit's gzip filter unpacks the whole file into a temporary file
        # (on the tmpfs here), so gznbd gets a cache as large as the export:
        # the same memory, filled by the same whole read before measuring.
        gznbd)         SRV_CMD=("$GZNBD" -f --exit-with-parent "${listen[@]}" cache="$SIZE" "$GZ") ;;
        nbdkit-gzip)   SRV_CMD=(env TMPDIR="$WORK" nbdkit -f --exit-with-parent "${listen[@]}"
                                --filter=gzip file "$GZ") ;;
        xnbd-sync)     SRV_CMD=("$XNBD_SYNC" -f --exit-with-parent "${listen[@]}" "$DISK") ;;
        # A primary and its replica, on a copy of the data of its own (so the
        # start compares checksums and copies nothing); the replica becomes
        # the primary's child, so its CPU and memory count with the server's.
        xnbd-sync-replica)
            # shellcheck disable=SC2016  # the script's own arguments
            SRV_CMD=(bash -c 'cp "$2" "$2.replica" && rm -f "$2.sock" || exit 1
                "$1" -f --exit-with-parent -U "$2.sock" "$2.replica" &
                for ((i = 0; i < 100; i++)); do [[ -S $2.sock ]] && break; sleep 0.1; done
                exec "$1" -f --exit-with-parent "${@:3}" "$2" replica="unix:$2.sock"' \
                xnbd-sync-pair "$XNBD_SYNC" "$DISK" "${listen[@]}") ;;
        # The qemu-like example takes qemu-nbd's options; run it like qemu-nbd.
        qemu-like)     SRV_CMD=("$QEMU_LIKE" -f raw -t --shared=8 --cache=writeback
                                "${listen[@]}" "$DISK") ;;
        # Same page-cache semantics as nbdkit file (writeback, thread pool);
        # --shared lets fio's two jobs and nbdcopy connect at once.
        qemu-nbd)      SRV_CMD=(qemu-nbd -f raw -t --shared=8 --cache=writeback
                                --aio=threads "${listen[@]}" "$DISK") ;;
        nbd-server)
            local conf=$WORK/nbd-server.conf
            {
                echo "[generic]"
                if [[ $transport == unix ]]; then
                    echo "unixsock = $sock"
                else
                    echo "listenaddr = 127.0.0.1"
                    echo "port = $port"
                fi
                echo "[bench]"
                echo "exportname = $DISK"
            } > "$conf"
            SRV_EXPORT=bench
            SRV_PIDFILE=$WORK/nbd-server.pid
            SRV_CMD=(nbd-server -C "$conf" -p "$SRV_PIDFILE") ;;
        limit)
            if [[ $transport == unix ]]; then SRV_CMD=("$ECHO" server "unix:$sock")
            else SRV_CMD=("$ECHO" server tcp:0); fi ;;
    esac
}
