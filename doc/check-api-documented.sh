#!/usr/bin/env bash
# Fail unless every public name of nbdsdk has its own entry in a man page,
# and every man page source passes podchecker.
#
# Usage: check-api-documented.sh INCLUDE_DIR DOC_DIR
#
# Public names are the nbdsdk_* functions declared in INCLUDE_DIR/*.h and
# the NBDSDK_* macros defined there outside nbdsdk-protocol.h (whose wire
# constants are the NBD specification's). A name is documented when it
# appears on a =head or =item line of a POD file in DOC_DIR: an entry of
# its own, not a passing mention.
set -euo pipefail

if [[ $# -ne 2 ]]; then
        echo "usage: $0 INCLUDE_DIR DOC_DIR" >&2
        exit 2
fi
include_dir=$1
doc_dir=$2

for tool in perl podchecker; do
        if ! command -v "$tool" >/dev/null; then
                echo "SKIP: $tool is not installed" >&2
                exit 77
        fi
done

shopt -s nullglob
headers=("$include_dir"/*.h)
pods=("$doc_dir"/*.pod)
if [[ ${#headers[@]} -eq 0 || ${#pods[@]} -eq 0 ]]; then
        echo "FAIL: no headers in $include_dir or no POD files in $doc_dir" >&2
        exit 1
fi

status=0

# podchecker exits 1 on errors; warnings are shown but do not fail.
for pod in "${pods[@]}"; do
        if ! podchecker "$pod"; then
                echo "FAIL: podchecker found errors in $pod" >&2
                status=1
        fi
done

# Declared names, comments stripped so that prose in them does not count.
mapfile -t declared < <(perl -0777 -ne '
        s{/\*.*?\*/}{}gs;
        s{//[^\n]*}{}g;
        print "$1\n" while /\b(nbdsdk_[a-z0-9_]+)\s*\(/g;
        if ($ARGV !~ m{(^|/)nbdsdk-protocol\.h$}) {
                while (/^[ \t]*#[ \t]*define[ \t]+(NBDSDK_[A-Z0-9_]+)/mg) {
                        print "$1\n" unless $1 =~ /_H$/;
                }
        }' "${headers[@]}" | sort -u)

if [[ ${#declared[@]} -eq 0 ]]; then
        echo "FAIL: found no public names in $include_dir" >&2
        exit 1
fi

# Names with an entry of their own in some page.
mapfile -t documented < <(perl -ne '
        next unless /^=(?:item|head\d)\b/;
        print "$1\n" while /\b(nbdsdk_[a-z0-9_]+|NBDSDK_[A-Z0-9_]+)/g;' "${pods[@]}" | sort -u)

mapfile -t missing < <(comm -23 <(printf '%s\n' "${declared[@]}") \
                                <(printf '%s\n' "${documented[@]}"))
for name in "${missing[@]}"; do
        [[ -n $name ]] || continue
        echo "FAIL: $name is declared in $include_dir but no page in $doc_dir has an entry for it" >&2
        status=1
done

if [[ $status -eq 0 ]]; then
        echo "ok: ${#declared[@]} public names documented in ${#pods[@]} pages"
fi
exit "$status"
