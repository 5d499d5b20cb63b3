#!/bin/bash
# libnbd group: nbdinfo, nbdcopy and nbdsh (libnbd_nbdsh.py) against the export.
# shellcheck source=groups/lib.bash
source "$NBDSDK_GROUPS_DIR/lib.bash"

uri=$NBDSDK_URI
work=$NBDSDK_WORKDIR

# json_field FILE EXPR: evaluate a Python expression over the JSON document j.
json_field() {
	"$NBDSDK_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2"
}

nbdinfo_json() {
	run nbdinfo --json "$uri" >"$work/info.json"
	expect_eq "protocol" "$(json_field "$work/info.json" 'j["protocol"]')" newstyle-fixed
	local size
	size=$(json_field "$work/info.json" 'j["exports"][0]["export-size"]')
	expect_eq "export-size in --json and --size" "$size" "$(export_size)"
	((size > 0)) || fail "export size is $size"
	local ro=False
	((NBDSDK_READ_ONLY)) && ro=True
	expect_eq "is_read_only" "$(json_field "$work/info.json" 'j["exports"][0]["is_read_only"]')" "$ro"
	# Flags that depend on others (proto.md, transmission flags).
	[[ $(json_field "$work/info.json" 'not j["exports"][0]["can_fast_zero"] or j["exports"][0]["can_zero"]') == True ]] ||
		fail "can_fast_zero without can_zero (SEND_FAST_ZERO MUST be 0 without SEND_WRITE_ZEROES)"
	[[ $(json_field "$work/info.json" 'not j["exports"][0]["can_df"] or j["structured"]') == True ]] ||
		fail "can_df without structured replies (SEND_DF MUST be clear)"
}

# nbdinfo --can/--is open new connections: their answers must agree with --json.
nbdinfo_can() {
	run nbdinfo --json "$uri" >"$work/info.json"
	local what key want got
	for what in cache df fast-zero flush fua multi-conn trim zero read-only; do
		key=can_${what//-/_}
		[[ $what == read-only ]] && key=is_read_only
		want=$(json_field "$work/info.json" "int(j['exports'][0]['$key'])")
		got=0
		if [[ $what == read-only ]]; then
			run nbdinfo --is read-only "$uri" || got=$?
		else
			run nbdinfo --can "$what" "$uri" || got=$?
		fi
		# --can/--is exit 0 for true, 2 for false.
		case $got in 0) got=1 ;; 2) got=0 ;; *) fail "nbdinfo --can $what exited with $got" ;; esac
		expect_eq "nbdinfo --can $what vs --json $key" "$got" "$want"
	done
}

nbdinfo_list() {
	run nbdinfo --list --json "$uri" >"$work/list.json"
	local names
	names=$(json_field "$work/list.json" '"\n".join("[" + e["export-name"] + "]" for e in j["exports"])')
	grep -qxF "[$NBDSDK_EXPORT]" <<<"$names" ||
		fail "export '$NBDSDK_EXPORT' is not in NBD_OPT_LIST's answer: $(tr '\n' ' ' <<<"$names")"
}

# The map must tile the export, and must not call data zero: 1 MiB of random data
# is copied to the start first (the rest of the export holds whatever it holds).
nbdinfo_map() {
	if ((!NBDSDK_READ_ONLY)); then
		head -c 1M /dev/urandom >"$work/data"
		run nbdcopy "$work/data" "$uri"
	fi
	run nbdinfo --map --json "$uri" >"$work/map.json"
	json_field "$work/map.json" '"\n".join("%d %d %d" % (e["offset"], e["length"], e["type"]) for e in j)' >"$work/map"
	local size offset length type position=0
	size=$(export_size)
	while read -r offset length type; do
		expect_eq "extent offset" "$offset" "$position"
		((length > 0)) || fail "extent at $offset has length $length"
		if ((!NBDSDK_READ_ONLY && offset < 1 << 20 && (type & 2))); then
			fail "extent [$offset,+$length) is reported zero (type $type) but holds random data"
		fi
		position=$((offset + length))
	done <"$work/map"
	expect_eq "end of the map" "$position" "$size"
}

nbdcopy_roundtrip() {
	local connections=$1 size=$NBDSDK_SIZE
	head -c "$size" /dev/urandom >"$work/in.img"
	run nbdcopy -C "$connections" "$work/in.img" "$uri"
	run nbdcopy -C "$connections" "$uri" "$work/out.img"
	expect_eq "size copied out" "$(stat -c %s "$work/out.img")" "$(export_size)"
	expect_eq "sha256 of the first $size bytes after a round trip" \
		"$(head -c "$size" "$work/out.img" | sha256sum)" "$(sha256sum <"$work/in.img")"
	rm -f "$work/in.img" "$work/out.img"
}

# Read-only: copying out works and is repeatable; copying in is refused.
nbdcopy_read_only() {
	local connections=$1
	run nbdcopy -C "$connections" "$uri" "$work/a.img"
	run nbdcopy -C 1 "$uri" "$work/b.img"
	cmp "$work/a.img" "$work/b.img" || fail "two copies of a read-only export differ"
	if run nbdcopy "$work/a.img" "$uri"; then
		fail "nbdcopy into a read-only export succeeded"
	fi
	rm -f "$work/a.img" "$work/b.img"
}

run_python nbdsh libnbd_nbdsh.py
check nbdinfo json nbdinfo_json
check nbdinfo can nbdinfo_can
check nbdinfo list nbdinfo_list
check nbdinfo map nbdinfo_map
if ((NBDSDK_READ_ONLY)); then
	check nbdcopy read-only nbdcopy_read_only 4
else
	check nbdcopy roundtrip nbdcopy_roundtrip 1
	# With multi-conn advertised nbdcopy really opens 4 connections; without it, 1.
	check nbdcopy roundtrip-4-connections nbdcopy_roundtrip 4
fi
finish
