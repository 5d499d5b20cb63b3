#!/bin/bash
# fio group: fio's nbd engine (libnbd) writing random blocks with crc32c verification
# at several queue depths, each job bounded by a short runtime.
# shellcheck source=groups/lib.bash
source "$NBDSDK_GROUPS_DIR/lib.bash"

uri=$NBDSDK_URI
area=$((NBDSDK_SIZE < 64 << 20 ? NBDSDK_SIZE : 64 << 20))
runtime=5

# fio_job NAME OPTION...: one bounded fio run; fio exits non-zero on any I/O or
# verification error (verify_fatal).
fio_job() {
	local name=$1
	shift
	run fio --name="$name" --ioengine=nbd --uri="$uri" --size="$area" --verify_state_save=0 \
		--time_based --runtime="$runtime" --output="$NBDSDK_WORKDIR/$name.out" "$@" ||
		fail "fio $name: $(grep -m1 -iE 'verify|error|bad' "$NBDSDK_WORKDIR/$name.out" || echo failed)"
	cat "$NBDSDK_WORKDIR/$name.out" >&2
}

# Writes are read back and checked while the job runs (verify_backlog).
verified_writes() {
	local depth=$1
	shift
	fio_job "randwrite-qd$depth" --rw=randwrite --iodepth="$depth" \
		--verify=crc32c --verify_backlog=256 --verify_fatal=1 "$@"
}

# With multi-conn, four jobs (four connections) write disjoint quarters at once.
multi_connection() {
	if run nbdinfo --can multi-conn "$uri"; then
		verified_writes 8 --bs=4k --numjobs=4 --size=$((area / 4)) --offset_increment=$((area / 4))
	else
		echo "multi-conn not advertised: one connection only" >&2
		verified_writes 8 --bs=4k
	fi
}

if ((NBDSDK_READ_ONLY)); then
	check fio randread-qd8 fio_job randread-qd8 --rw=randread --iodepth=8 --bs=4k --readonly
else
	check fio randwrite-verify-qd1 verified_writes 1 --bs=4k
	check fio randwrite-verify-qd8 verified_writes 8 --bs=4k
	check fio randwrite-verify-qd32-mixed-sizes verified_writes 32 --bsrange=4k-128k --blockalign=4k
	check --needs nbdinfo fio randwrite-verify-4-connections multi_connection
fi
finish
