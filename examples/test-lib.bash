# Sourced by the examples' command-line tests: a temporary directory (made from
# the template in $tmp_template, default /tmp/nbdsdk-test.XXXXXX) removed at exit,
# the background servers listed in pids stopped at exit, fail(), t() and
# wait_exit().
tmp=$(mktemp -d "${tmp_template:-/tmp/nbdsdk-test.XXXXXX}")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
t() { timeout 30 "$@"; }

# wait_exit PID: the process (a child of this shell) ends within 10 s; its exit
# status goes to $exit_status.
wait_exit() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && fail "process $1 still running after 10 s"
	exit_status=0
	wait "$1" || exit_status=$?
}
