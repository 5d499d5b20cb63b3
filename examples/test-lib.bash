# Sourced by the examples' command-line tests: a temporary directory (made from
# the template in $tmp_template, default /tmp/nbdsdk-test.XXXXXX) removed at exit,
# the background servers listed in pids stopped at exit, fail() and t().
tmp=$(mktemp -d "${tmp_template:-/tmp/nbdsdk-test.XXXXXX}")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
t() { timeout 30 "$@"; }
