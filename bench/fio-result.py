#!/usr/bin/python3
"""Prints "OPS BYTES SECONDS" from a fio JSON report (all jobs reported as
one group): requests and bytes of both directions, and the longest
direction's runtime."""
import json
import sys

with open(sys.argv[1]) as f:
    job = json.load(f)["jobs"][0]
ops = nbytes = 0
runtime_ms = 0
for direction in ("read", "write"):
    d = job[direction]
    ops += d["total_ios"]
    nbytes += d["io_bytes"]
    runtime_ms = max(runtime_ms, d["runtime"])
if ops == 0 or runtime_ms == 0:
    sys.exit("fio-result: the job did no I/O")
print(ops, nbytes, runtime_ms / 1000)
