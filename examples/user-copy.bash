# Sourced by tests that run a server as an unprivileged user (root may open any
# file, so only another user shows what permissions do). The build tree may
# sit below a directory that user cannot enter, so it gets a copy.
#
# user_copy PROGRAM DIR: copy PROGRAM, and the libnbdsdk it loads, into DIR
# (made readable by all) and print the path of a wrapper that runs the copy.
user_copy() {
	local prog=$1 dir=$2 lib
	mkdir -p "$dir/lib"
	cp "$prog" "$dir/"
	lib=$(ldd "$prog" | awk '$1 ~ /^libnbdsdk\.so/ { print $3 }')
	[[ -z $lib ]] || cp -L "$lib" "$dir/lib/"
	printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$dir/lib" "$dir/$(basename "$prog")" >"$dir/run"
	chmod -R a+rX "$dir"
	chmod a+x "$dir/run"
	echo "$dir/run"
}
