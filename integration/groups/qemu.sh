#!/bin/bash
# qemu group: qemu-img (info, convert in and out, compare, map) and qemu-io (patterned
# reads and writes, aligned and not, write-zeroes, discard).
# shellcheck source=groups/lib.bash
source "$NBDSDK_GROUPS_DIR/lib.bash"

uri=$NBDSDK_URI
work=$NBDSDK_WORKDIR
size=$NBDSDK_SIZE

# The export seen through qemu's raw driver cut to its first $size bytes, as
# --image-opts, so that qemu-img compares only the area this group wrote.
qemu_escape() { printf '%s' "${1//,/,,}"; }
if [[ -n $NBDSDK_SOCKET ]]; then
	server="file.server.type=unix,file.server.path=$(qemu_escape "$NBDSDK_SOCKET")"
elif [[ $uri =~ ^nbd://([^/:]+)(:([0-9]+))? ]]; then
	server="file.server.type=inet,file.server.host=${BASH_REMATCH[1]},file.server.port=${BASH_REMATCH[3]:-10809}"
else
	echo "qemu group: cannot express $uri as qemu options" >&2
	exit 2
fi
head_opts="driver=raw,size=$size,file.driver=nbd,$server,file.export=$(qemu_escape "$NBDSDK_EXPORT")"
src_opts="driver=raw,file.filename=$(qemu_escape "$work/src.img")"

# A source image: random 1 MiB pieces every 4 MiB, the rest a hole.
make_source() {
	rm -f "$work/src.img"
	truncate -s "$size" "$work/src.img"
	local mib
	for ((mib = 0; mib < size >> 20; mib += 4)); do
		head -c 1M /dev/urandom | dd of="$work/src.img" bs=1M seek="$mib" conv=notrunc status=none
	done
}

img_info() {
	run qemu-img info -f raw --output=json "$uri" >"$work/info.json"
	local virtual
	virtual=$("$NBDSDK_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["virtual-size"])' "$work/info.json")
	((virtual > 0)) || fail "virtual-size $virtual"
	if have nbdinfo; then
		expect_eq "qemu-img virtual-size vs nbdinfo --size" "$virtual" "$(export_size)"
	fi
}

img_convert_in() {
	make_source
	run qemu-img convert -n --image-opts "$src_opts" --target-image-opts "$head_opts"
	run qemu-img compare --image-opts "$src_opts" "$head_opts" ||
		fail "qemu-img compare: the export differs from the image converted into it"
}

img_convert_out() {
	make_source
	run qemu-img convert -n --image-opts "$src_opts" --target-image-opts "$head_opts"
	run qemu-img convert --image-opts "$head_opts" -O raw "$work/out.img"
	cmp "$work/src.img" "$work/out.img" || fail "image converted out differs from what was converted in"
}

# Allocation as qemu-img map sees it must match nbdinfo --map (both from BLOCK_STATUS),
# as ranges of (hole, zero) after merging neighbours.
img_map() {
	if ((!NBDSDK_READ_ONLY)); then
		make_source
		run qemu-img convert -n --image-opts "$src_opts" --target-image-opts "$head_opts"
	fi
	run qemu-img map -f raw --output=json "$uri" >"$work/qemu-map.json"
	run nbdinfo --map --json "$uri" >"$work/nbdinfo-map.json"
	"$NBDSDK_PYTHON" - "$work/qemu-map.json" "$work/nbdinfo-map.json" <<-'EOF'
		import json, sys

		def merged(extents):
		    out = []
		    for start, length, state in extents:
		        if out and out[-1][2] == state and out[-1][0] + out[-1][1] == start:
		            out[-1][1] += length
		        else:
		            out.append([start, length, state])
		    return out

		qemu = merged((e["start"], e["length"], (not e["data"], e["zero"]))
		              for e in json.load(open(sys.argv[1])))
		nbd = merged((e["offset"], e["length"], (bool(e["type"] & 1), bool(e["type"] & 2)))
		             for e in json.load(open(sys.argv[2])))
		if qemu != nbd:
		    for q, n in zip(qemu, nbd):
		        if q != n:
		            print(f"first difference: qemu-img map {q} vs nbdinfo --map {n} "
		                  "(start, length, (hole, zero))", file=sys.stderr)
		            break
		    print(f"qemu-img map ({len(qemu)} ranges) and nbdinfo --map ({len(nbd)} ranges) "
		          "disagree", file=sys.stderr)
		    sys.exit(1)
	EOF
}

# qemu_io COMMAND...: one qemu-io run; every -c must succeed and every -P must match.
qemu_io() {
	local args=() c
	for c in "$@"; do args+=(-c "$c"); done
	run qemu-io -f raw "${args[@]}" "$uri" >"$work/qemu-io.out" 2>&1 || {
		cat "$work/qemu-io.out" >&2
		fail "qemu-io: $(grep -m1 -iE 'fail|error' "$work/qemu-io.out" || echo 'non-zero exit')"
	}
	cat "$work/qemu-io.out" >&2
	! grep -q 'Pattern verification failed' "$work/qemu-io.out" ||
		fail "qemu-io: $(grep -m1 'Pattern verification failed' "$work/qemu-io.out")"
}

io_aligned() {
	qemu_io 'write -P 0xab 0 64k' 'read -P 0xab 0 64k' \
		'write -f -P 0xa5 64k 64k' 'read -P 0xa5 64k 64k' 'read -P 0xab 0 64k' 'flush'
}

io_unaligned() {
	qemu_io 'write -P 0xab 0 64k' 'write -P 0xcd 1000 3000' 'read -P 0xcd 1000 3000' \
		'read -P 0xab 0 1000' 'read -P 0xab 4000 61536' 'read -P 0xcd 1001 17'
}

io_write_zeroes() {
	qemu_io 'write -P 0xab 0 64k' 'write -z 8k 8k' 'read -P 0 8k 8k' \
		'read -P 0xab 0 8k' 'read -P 0xab 16k 48k' \
		'write -z 33000 300' 'read -P 0 33000 300' 'read -P 0xab 32768 232' 'read -P 0xab 33300 100'
}

# After a discard the range's contents are unspecified (proto.md, NBD_CMD_TRIM); the
# data around it must survive.
io_discard() {
	qemu_io 'write -P 0xab 0 64k' 'discard 16k 16k' 'read -P 0xab 0 16k' 'read -P 0xab 32k 32k'
}

io_read_only() {
	run qemu-io -r -f raw -c 'read 0 64k' "$uri"
	if run qemu-io -f raw -c 'write -P 0xab 0 512' "$uri"; then
		fail "qemu-io wrote to a read-only export"
	fi
}

check qemu-img info img_info
if ((NBDSDK_READ_ONLY)); then
	check --needs nbdinfo qemu-img map img_map
	check qemu-io read-only io_read_only
else
	check qemu-img convert-in-compare img_convert_in
	check qemu-img convert-out img_convert_out
	check --needs nbdinfo qemu-img map img_map
	check qemu-io aligned io_aligned
	check qemu-io unaligned io_unaligned
	check qemu-io write-zeroes io_write_zeroes
	check qemu-io discard io_discard
fi
finish
