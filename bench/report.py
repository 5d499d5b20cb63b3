#!/usr/bin/python3
"""Turns bench/run's results.tsv into report.md and the data the plot reads.

usage: report.py DIR    (DIR holds results.tsv and machine.txt)

Every figure is the median over rounds with the min-max range.  A server's
ratio compares its median with the best median among the peers of its class
(memory servers with nbdkit memory; file servers with qemu-nbd, nbdkit file
and nbd-server; gzip servers with nbdkit's gzip filter); the limit row is
compared with the best peer of any class.
"""
import csv
import os
import statistics
import sys

GIB = 1 << 30

out = sys.argv[1]
with open(os.path.join(out, "results.tsv")) as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
with open(os.path.join(out, "machine.txt")) as f:
    machine = [line.rstrip("\n") for line in f]

ok = [r for r in rows if r["status"] == "ok"]
failed = [r for r in rows if r["status"] != "ok"]
transports = list(dict.fromkeys(r["transport"] for r in rows if r["transport"] != "-"))
workloads = list(dict.fromkeys(r["workload"] for r in rows if r["workload"] != "memcpy"))
servers = list(dict.fromkeys(r["server"] for r in rows if r["server"] != "limit"))
if any(r["server"] == "limit" and r["workload"] != "memcpy" for r in rows):
    servers.append("limit")
info = {r["server"]: (r["class"], r["role"]) for r in rows}
rounds = sorted({r["round"] for r in ok}, key=int)
ours = [s for s in servers if info[s][1] == "ours"]


def speed(r):
    """Requests per second or bytes per second, as the workload's unit says."""
    n = float(r["ops"] if r["unit"] == "iops" else r["bytes"])
    return n / float(r["seconds"])


def cpu_per_op(r):
    return float(r["cpu_s"]) / float(r["ops"]) if r["ops"] != "-" else None


def cpu_per_gib(r):
    return float(r["cpu_s"]) / (float(r["bytes"]) / GIB)


def client_cores(r):
    """Cores the client kept busy: its CPU time over its wall-clock time."""
    wall = float(r["wall_s"])
    return float(r["client_cpu_s"]) / wall if wall > 0 else None


def client_per_op(r):
    """The client's CPU time per request: with the client at one core, the
    part of the request rate that the server cannot change."""
    return float(r["client_cpu_s"]) / float(r["ops"]) if r["ops"] != "-" else None


def stats(values):
    """(median, min, max) of the values that exist, or None."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def cell(t, w, s):
    """Statistics of one transport/workload/server cell, or None."""
    rs = [r for r in ok if r["transport"] == t and r["workload"] == w and r["server"] == s]
    if not rs:
        return None
    return {
        "unit": rs[0]["unit"],
        "speed": stats([speed(r) for r in rs]),
        "cpu_op": stats([cpu_per_op(r) for r in rs]),
        "cpu_gib": stats([cpu_per_gib(r) for r in rs]),
        "rss": max(int(r["rss_kib"]) for r in rs),
        "client": stats([client_cores(r) for r in rs]),
        "client_op": stats([client_per_op(r) for r in rs]),
        "n": len(rs),
    }


def best_peer(cells, s, key, pick):
    """The best peer median for server s (pick=max for speed, min for cost)."""
    cls = info[s][0]
    medians = [c[key][0] for p, c in cells.items()
               if c and c[key] and info[p][1] == "peer" and (cls == "limit" or info[p][0] == cls)]
    return pick(medians) if medians else None


def round_ratios(t, w, s):
    """Each round's speed of server s over the best peer's in the same round
    (their runs seconds apart, where the medians' may be minutes apart)."""
    out = []
    for n in rounds:
        got = {r["server"]: speed(r) for r in ok
               if r["transport"] == t and r["workload"] == w and r["round"] == n}
        peers = [v for p, v in got.items() if info[p][1] == "peer" and info[p][0] == info[s][0]]
        if s in got and peers:
            out.append(f"{got[s] / max(peers):.2f}")
    return " · ".join(out) or "–"


def fmt_speed(v, unit):
    return f"{v / 1e3:.1f}k" if unit == "iops" else f"{v / 1e9:.2f}"


def fmt_range(st, unit):
    return f"{fmt_speed(st[1], unit)}–{fmt_speed(st[2], unit)}"


def ratio(v, best):
    return f"{v / best:.2f}×" if best else "–"


md = ["# nbdsdk benchmark", "", "## Machine and run", ""]
md += [f"- {line}" for line in machine]
md += ["", "Medians over the rounds, with min–max.  **× best peer**: the median "
       "divided by the best median among the peers of the same class (memory "
       "servers: nbdkit memory; file servers on the tmpfs file: qemu-nbd, nbdkit "
       "file, nbd-server; gzip servers, which serve one gzip file read-only and "
       "so run only the reads: nbdkit file with its gzip filter); the limit row "
       "is divided by the best peer of any "
       "class.  Server CPU is user+system time of the server's processes during "
       "the client's run, divided by the requests or GiB the client reported.  "
       "RSS is the largest VmHWM seen.  Client cores: the client's CPU time "
       "(all its processes, start-up included) over its wall-clock time; near "
       "1.0 a single-threaded client (fio with one job, qemu-img) is the "
       "bound, whatever the server; its CPU per request then says how much "
       "of that bound the server still moves.  nbdkit null does no storage work: a "
       "floor on protocol cost, not a peer.", ""]

plot_servers = servers
for t in transports:
    name = {"unix": "Unix socket", "tcp": "TCP on 127.0.0.1"}[t]
    md += [f"## {name}", ""]
    header = ["| workload | " + " | ".join(servers) + " |",
              "|---|" + "---:|" * len(servers)]
    summary, cpu_summary, client_summary = list(header), list(header), list(header)
    per_round = ["| workload | " + " | ".join(ours) + " |", "|---|" + "---:|" * len(ours)]
    details = []
    plot_speed, plot_cpu = [], []
    for w in workloads:
        cells = {s: cell(t, w, s) for s in servers}
        present = [s for s in servers if cells[s]]
        if not present:
            continue
        unit = cells[present[0]]["unit"]
        best_speed = {s: best_peer(cells, s, "speed", max) for s in present}
        best_cpu = {s: best_peer(cells, s, "cpu_gib", min) for s in present}
        limit = cells.get("limit")
        summary.append(f"| {w} | " + " | ".join(
            f"{fmt_speed(cells[s]['speed'][0], unit)} ({ratio(cells[s]['speed'][0], best_speed[s])})"
            if cells[s] else "–" for s in servers) + " |")
        cpu_summary.append(f"| {w} | " + " | ".join(
            (f"{cells[s]['cpu_op'][0] * 1e6:.2f} µs" if unit == "iops" and cells[s]["cpu_op"]
             else f"{cells[s]['cpu_gib'][0]:.3f} s") +
            f" ({ratio(cells[s]['cpu_gib'][0], best_cpu[s])})"
            if cells[s] else "–" for s in servers) + " |")
        client_summary.append(f"| {w} | " + " | ".join(
            f"{cells[s]['client'][0]:.2f}" if cells[s] and cells[s]["client"] else "–"
            for s in servers) + " |")
        per_round.append(f"| {w} | " + " | ".join(round_ratios(t, w, s) for s in ours) + " |")
        label = "k IOPS" if unit == "iops" else "GB/s"
        details += [f"### {w} ({name})", "",
                    f"| server | {label} | min–max | × best peer | of limit "
                    "| CPU µs/req | CPU s/GiB | CPU × best peer | peak RSS MiB "
                    "| client cores | client CPU µs/req | rounds |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in present:
            c = cells[s]
            med = c["speed"][0]
            of_limit = f"{100 * med / limit['speed'][0]:.0f}%" if limit and s != "limit" else "–"
            cpu_op = f"{c['cpu_op'][0] * 1e6:.2f}" if c["cpu_op"] else "–"
            client = f"{c['client'][0]:.2f}" if c["client"] else "–"
            client_op = f"{c['client_op'][0] * 1e6:.2f}" if c["client_op"] else "–"
            details.append(
                f"| {s} | {fmt_speed(med, unit).rstrip('k')} | {fmt_range(c['speed'], unit)} "
                f"| {ratio(med, best_speed[s])} | {of_limit} | {cpu_op} "
                f"| {c['cpu_gib'][0]:.3f} | {ratio(c['cpu_gib'][0], best_cpu[s])} "
                f"| {c['rss'] / 1024:.0f} | {client} | {client_op} | {c['n']} |")
        details.append("")

        def plot_row(key, best):
            fields = [w]
            for s in plot_servers:
                c = cells[s]
                if c and c[key] and best[s]:
                    fields += [f"{v / best[s]:.4f}" for v in c[key]]
                else:
                    fields += ["NaN"] * 3
            return " ".join(fields)
        plot_speed.append(plot_row("speed", best_speed))
        plot_cpu.append(plot_row("cpu_gib", best_cpu))
    md += ["Speed: median (× best peer), k IOPS or GB/s.", ""] + summary + [""]
    md += ["Server CPU: median per request (IOPS workloads) or per GiB "
           "(× best peer; lower is better).", ""] + cpu_summary + [""]
    md += ["Client cores: median CPU time of the client over its wall-clock "
           "time.", ""] + client_summary + [""]
    if ours:
        md += ["Per round: each round's speed over the best peer's in the same "
               "round (× best peer, rounds in order).", ""] + per_round + [""]
    md += details
    for kind, lines in (("speed", plot_speed), ("cpu", plot_cpu)):
        with open(os.path.join(out, f"plot-{t}-{kind}.dat"), "w") as f:
            f.write("\n".join(lines) + "\n")

mem = stats([float(r["bytes"]) / float(r["seconds"]) for r in ok if r["workload"] == "memcpy"])
if mem:
    md += ["## Memory bandwidth", "",
           f"memcpy of 1 MiB blocks: {mem[0] / 1e9:.2f} GB/s "
           f"(min–max {mem[1] / 1e9:.2f}–{mem[2] / 1e9:.2f}).", ""]
if failed:
    md += ["## Failed runs", "", "| round | transport | workload | server | status |",
           "|---|---|---|---|---|"]
    md += [f"| {r['round']} | {r['transport']} | {r['workload']} | {r['server']} "
           f"| {r['status']} |" for r in failed]
    md += ["", "Logs: failed-*.log next to this report.", ""]
md += ["![medians with min–max, as ratios to the best peer](report.png)", ""]

with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(md))
with open(os.path.join(out, "plot.vars"), "w") as f:
    f.write(f'servers = "{" ".join(plot_servers)}"\n')
    f.write(f'transports = "{" ".join(transports)}"\n')
