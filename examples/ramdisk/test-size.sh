#!/usr/bin/env bash
# The mission's promise: a complete RAM disk in at most 50 lines of code
# (lines that are neither blank nor only a comment).
set -euo pipefail
src=${1:?usage: test-size.sh RAMDISK_C}
lines=$(grep -v -E '^[[:space:]]*$|^[[:space:]]*(/\*|\*|//)' "$src" | wc -l)
if [ "$lines" -gt 50 ]; then
        echo "FAIL: $src has $lines lines of code, more than 50"
        exit 1
fi
echo "ok: $src has $lines lines of code"
