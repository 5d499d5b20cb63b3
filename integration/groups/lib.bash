# Helpers shared by the nbdsdk-check group scripts (see README.md in this directory).
# Source it first thing:  source "$NBDSDK_GROUPS_DIR/lib.bash"
set -euo pipefail

: "${NBDSDK_URI:?run groups through nbdsdk-check}"
: "${NBDSDK_SIZE:?}" "${NBDSDK_READ_ONLY:?}" "${NBDSDK_TIMEOUT:?}" "${NBDSDK_WORKDIR:?}"
: "${NBDSDK_GROUPS_DIR:?}" "${NBDSDK_PYTHON:=/usr/bin/python3}"

checks_passed=0
checks_failed=0
checks_skipped=0

# result STATUS CLIENT CHECK [NOTE...]: report one check to the harness.
result() {
	local status=$1 client=$2 name=$3
	shift 3
	printf 'RESULT %s %s %s%s\n' "$status" "$client" "$name" "${*:+ $*}"
	printf '=== %s %s/%s%s\n' "$status" "$client" "$name" "${*:+: $*}" >&2
	case $status in
	pass) checks_passed=$((checks_passed + 1)) ;;
	fail) checks_failed=$((checks_failed + 1)) ;;
	skip) checks_skipped=$((checks_skipped + 1)) ;;
	*) echo "lib.bash: bad status $status" >&2; exit 2 ;;
	esac
}

# have TOOL: is this client available? "nbdsh" means Python with Debian's nbd module.
have() {
	case $1 in
	nbdsh) "$NBDSDK_PYTHON" -c 'import nbd' 2>/dev/null ;;
	raw) "$NBDSDK_PYTHON" -c 'import socket, struct' 2>/dev/null ;;
	*) command -v "$1" >/dev/null ;;
	esac
}

# run CMD...: a client call, logged, bounded by the per-call timeout.
run() {
	run_command=$*
	echo "+ $*" >&2
	timeout -k 5 "$NBDSDK_TIMEOUT" "$@"
}

# fail MESSAGE: end the current check as failed; MESSAGE becomes the result's note.
fail() {
	echo "$*" >&3
	exit 1
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[[ $2 == "$3" ]] || fail "$1: got '$2', expected '$3'"
}

# The ERR trap of a check: name the command that failed (the client, not run's line).
failed_check_command() {
	local command=$BASH_COMMAND timed_out=
	[[ ${FUNCNAME[1]:-} == run ]] && command=$run_command
	(($1 == 124)) && timed_out=" (timed out after ${NBDSDK_TIMEOUT}s)"
	echo "command failed with status $1$timed_out: $command" >&3
}

# check [--needs TOOL]... CLIENT NAME FUNCTION [ARGS...]: run FUNCTION as one check,
# in a subshell with errexit; it passes if FUNCTION returns 0. The first failing
# command (or fail's message) becomes the note. A missing CLIENT (or other needed
# tool) makes it a skip.
check() {
	local tools=() rc tool
	while [[ $1 == --needs ]]; do
		tools+=("$2")
		shift 2
	done
	local client=$1 name=$2
	shift 2
	for tool in "$client" "${tools[@]}"; do
		if ! have "$tool"; then
			result skip "$client" "$name" "missing tool: $tool"
			return 0
		fi
	done
	local note="$NBDSDK_WORKDIR/.note"
	: >"$note"
	echo "--- $client/$name" >&2
	set +e
	(
		set -eE
		trap 'failed_check_command $?' ERR
		"$@"
	) 3>"$note" >&2
	rc=$?
	set -e
	if ((rc == 0)); then
		result pass "$client" "$name"
	else
		result fail "$client" "$name" "$(head -n 1 "$note" | tr -d '\r')"
	fi
}

# relay: copy RESULT lines that a helper program prints (stdin) to the harness,
# counting them; anything else goes to the log, except the "=== STATUS" lines of a
# helper that uses result itself (the guest's checks): result here logs them again.
relay() {
	local line status client name note
	while IFS= read -r line; do
		if [[ $line =~ ^RESULT\ (pass|fail|skip)\ ([^ ]+)\ ([^ ]+)( (.*))?$ ]]; then
			status=${BASH_REMATCH[1]} client=${BASH_REMATCH[2]} name=${BASH_REMATCH[3]}
			note=${BASH_REMATCH[5]}
			result "$status" "$client" "$name" "$note"
		elif [[ $line =~ ^===\ (pass|fail|skip)\  ]]; then
			continue
		else
			printf '%s\n' "$line" >&2
		fi
	done
}

# run_python CLIENT SCRIPT ARGS...: run one of the groups' Python check programs,
# which print RESULT lines themselves and exit 0 once every check ran; a crash or a
# timeout becomes a failed check.
run_python() {
	local client=$1 script=$2 rc
	shift 2
	if ! have "$client"; then
		result skip "$client" "${script%.py}" "missing tool: $client"
		return 0
	fi
	local status_file="$NBDSDK_WORKDIR/.python-status"
	relay < <(
		set +e
		timeout -k 5 $((NBDSDK_TIMEOUT * 10)) "$NBDSDK_PYTHON" "$NBDSDK_GROUPS_DIR/$script" "$@"
		echo $? >"$status_file"
	)
	rc=$(cat "$status_file")
	if ((rc != 0)); then
		result fail "$client" "${script%.py}" "$script ended with status $rc (124: timed out); see log"
	fi
}

# finish: exit with the status the harness expects (0 / 1 / 77).
finish() {
	if ((checks_failed > 0)); then
		exit 1
	elif ((checks_passed == 0 && checks_skipped > 0)); then
		exit 77
	fi
	exit 0
}

# The export size in bytes, as the server advertises it.
export_size() {
	run nbdinfo --size "$NBDSDK_URI"
}
