#!/usr/bin/env python3
"""scripts/count-test-results: counts results across testlog files, exits 1
on a failure, and ends a failing run with each failed test's name and the
tail of its output, just before the count line."""
import json
import os
import subprocess
import sys
import tempfile

script = sys.argv[1]
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"not ok - {what}")
        sys.exit(1)
    print(f"ok {checks} - {what}")


def run(*logs):
    paths = []
    tmp = tempfile.mkdtemp()
    for i, tests in enumerate(logs):
        path = os.path.join(tmp, f"testlog{i}.json")
        with open(path, "w") as f:
            for t in tests:
                f.write(json.dumps(t) + "\n\n")
        paths.append(path)
    p = subprocess.run([sys.executable, script, *paths], capture_output=True, text=True)
    return p.returncode, p.stdout.rstrip("\n").split("\n")


ok = {"name": "s / a", "result": "OK", "stdout": "fine\n", "returncode": 0, "duration": 1}
skip = {"name": "s / b", "result": "SKIP", "stdout": "", "returncode": 77, "duration": 0}
long_output = "".join(f"line {i}\n" for i in range(300))
bad = {"name": "s / c", "result": "TIMEOUT", "stdout": long_output, "returncode": -15, "duration": 600}
xfail = {"name": "s / d", "result": "EXPECTEDFAIL", "stdout": "", "returncode": 1, "duration": 0}

rc, out = run([ok, skip], [ok, xfail])
check(rc == 0, "all passing: exit 0")
check(out == ["3 passed, 0 failed, 1 skipped"], "all passing: only the count line")

rc, out = run([ok, bad], [skip])
check(rc == 1, "a failure: exit 1")
check(out[-1] == "1 passed, 1 failed, 1 skipped", "a failure: the count line comes last")
check(any(l.startswith("=== FAILED: s / c (TIMEOUT") for l in out), "the failed test is named with its result")
check("line 299" in out and "line 160" in out and "line 159" not in out,
      "a lone failure shows the last 140 lines of its output")
check(any("160 earlier lines" in l for l in out), "the cut is said")
check(not any("s / a" in l for l in out), "passing tests are not shown")

many = [dict(bad, name=f"s / f{i}") for i in range(10)]
rc, out = run(many)
check(out[-1] == "0 passed, 10 failed, 0 skipped", "ten failures: counted")
check(sum(l.startswith("=== FAILED: s / f") for l in out) == 10, "ten failures: each named")
check("line 280" in out and "line 279" not in out, "ten failures: 20 lines each at least")

rc, out = run([skip])
check(rc == 1, "nothing passed: exit 1")
