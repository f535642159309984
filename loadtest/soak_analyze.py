#!/usr/bin/env python3
"""Judges a soak run (loadtest/soak.sh): joins the gateway samples (RSS, fds, threads, CPU) with the load
generators' per-interval p99, prints a table over the run and a verdict (FLAT, LEAK, or FAILED when too many
requests failed), and exits 1 unless it is FLAT.

  soak_analyze.py SAMPLES.csv LOAD.json [LOAD.json …] [--metrics FILE] [--summary OUT.json] [--sink-limit B]
  soak_analyze.py --capacity RAMP.json [RAMP.json …]     (the capacity a ramp found, requests/s)

Flat means, after the first 10 % of the run (warm-up):
  - RSS: the median of the last 10 % of samples is less than 5 % above the median around the midpoint
    (45–55 %): memory may settle, it must not keep growing in the second half;
  - open file descriptors: the last quarter's highest count is at most 2 above the second quarter's highest
    (the sink's file rotation may briefly hold one more);
  - threads: the last quarter's highest count is no higher than the second quarter's highest.
Errors above 1 % of the requests (--max-errors) also fail the run, and so do comparison records taking more disk than
--sink-limit (rotation keeps max_files × max_file_bytes, plus the file being written). p99 drift (the last
quarter's over twice the second quarter's) is reported, not judged: on a shared machine latency follows the
neighbours.
"""

import argparse
import csv
import json
import statistics
import sys


def window(rows, start, end):
    """Rows whose time lies in [start, end) as fractions of the run."""
    if not rows:
        return []
    t0, t1 = rows[0]["t_s"], rows[-1]["t_s"]
    span = max(t1 - t0, 1e-9)
    picked = [r for r in rows if start <= (r["t_s"] - t0) / span < end or (end >= 1 and r is rows[-1])]
    return picked or [min(rows, key=lambda r: abs((r["t_s"] - t0) / span - (start + end) / 2))]


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def interval_p99(loads, t):
    """The highest p99 among the generators' intervals covering sample time `t` (seconds since the load started)."""
    values = []
    for load in loads:
        step = load["settings"]["intervalSeconds"]
        warmup = load["settings"]["warmupSeconds"]
        for interval in load["intervals"]:
            # Interval times count from the start of measurement; samples from the start of the generator.
            if interval["t"] - step <= t - warmup < interval["t"] and interval.get("latencyMs"):
                values.append(interval["latencyMs"]["p99"])
    return max(values) if values else None


def capacity(paths, p99_limit_ms=50.0):
    """The highest total OK rate of the ramp's 1 s intervals before the first two bad ones in a row (a generator
    saw a failed request or a p99 at or over `p99_limit_ms`; one bad second alone is a neighbour's hiccup). The
    generators ramp side by side, so their intervals align."""
    loads = []
    for path in paths:
        with open(path) as f:
            loads.append({round(i["t"]): i for i in json.load(f)["intervals"]})
    times = sorted(set.intersection(*(set(load) for load in loads)))

    def bad(t):
        return any(i["errors"] > 0 or (i.get("latencyMs") or {}).get("p99", 0) >= p99_limit_ms
                   for i in (load[t] for load in loads))

    best = 0.0
    for index, t in enumerate(times):
        if bad(t) and (index + 1 == len(times) or bad(times[index + 1])):
            break
        if not bad(t):
            best = max(best, sum(load[t]["ok"] for load in loads))
    return best


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--capacity":
        print(round(capacity(sys.argv[2:])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples")
    parser.add_argument("loads", nargs="+")
    parser.add_argument("--metrics", help="a /metrics scrape taken at the end (sink counters)")
    parser.add_argument("--summary", help="write the figures and verdict here as JSON")
    parser.add_argument("--sink-limit", type=float, help="bytes the comparison records may take on disk at most")
    parser.add_argument("--max-errors", type=float, default=0.01,
                        help="fraction of requests that may fail (default 0.01)")
    args = parser.parse_args()

    with open(args.samples) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if len(rows) < 8:
        print(f"soak: only {len(rows)} samples; run longer or sample more often", file=sys.stderr)
        return 2
    loads = []
    for path in args.loads:
        with open(path) as f:
            loads.append(json.load(f))
    for row in rows:
        row["p99_ms"] = interval_p99(loads, row["t_s"])

    measured = window(rows, 0.10, 1.01)
    q2 = window(rows, 0.25, 0.50)
    q4 = window(rows, 0.75, 1.01)
    middle = window(rows, 0.45, 0.55)
    last = window(rows, 0.90, 1.01)

    rss_mid, rss_end = median(middle, "rss_kib"), median(last, "rss_kib")
    rss_growth = (rss_end - rss_mid) / rss_mid
    fds_q2, fds_q4 = max(r["fds"] for r in q2), max(r["fds"] for r in q4)
    threads_q2, threads_q4 = max(r["threads"] for r in q2), max(r["threads"] for r in q4)
    p99_q2 = [r["p99_ms"] for r in q2 if r["p99_ms"] is not None]
    p99_q4 = [r["p99_ms"] for r in q4 if r["p99_ms"] is not None]
    requests = sum(load["summary"]["completed"] + load["summary"]["unfinished"] for load in loads)
    ok = sum(load["summary"]["ok"] for load in loads)
    errors = requests - ok
    by_status = {}
    for load in loads:
        for status, count in load["summary"]["byStatus"].items():
            by_status[status] = by_status.get(status, 0) + count
    duration = rows[-1]["t_s"] - rows[0]["t_s"]
    cpu = (rows[-1]["cpu_s"] - measured[0]["cpu_s"]) / max(rows[-1]["t_s"] - measured[0]["t_s"], 1e-9)

    print("t_s,rss_mib,fds,threads,cpu_pct,sink_files,p99_ms")
    step = max(1, len(rows) // 12)
    shown = rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else [])
    previous = None
    for row in shown:
        cpu_pct = ""
        if previous is not None:
            busy = (row["cpu_s"] - previous["cpu_s"]) / max(row["t_s"] - previous["t_s"], 1e-9)
            cpu_pct = f"{100 * busy:.0f}"
        p99 = "" if row["p99_ms"] is None else f"{row['p99_ms']:.2f}"
        print(f"{row['t_s']:.0f},{row['rss_kib'] / 1024:.1f},{row['fds']:.0f},{row['threads']:.0f},{cpu_pct},"
              f"{row['sink_files']:.0f},{p99}")
        previous = row

    sink = {}
    if args.metrics:
        with open(args.metrics) as f:
            for line in f:
                # switchyard_sink_records_total{stage="written"} 123 → sink["written"] = 123
                if line.startswith(("switchyard_sink_dropped_total{", "switchyard_sink_records_total{")):
                    labels, value = line.rsplit(" ", 1)
                    kind = "dropped_" if "dropped" in labels else ""
                    sink[kind + labels.split('"')[1]] = float(value)

    problems, notes = [], []
    if rss_growth >= 0.05:
        problems.append(f"RSS grew {100 * rss_growth:.1f} % in the second half ({rss_mid / 1024:.1f} → "
                        f"{rss_end / 1024:.1f} MiB)")
    if fds_q4 > fds_q2 + 2:
        problems.append(f"open file descriptors grew: {fds_q2:.0f} → {fds_q4:.0f}")
    if threads_q4 > threads_q2:
        problems.append(f"threads grew: {threads_q2:.0f} → {threads_q4:.0f}")
    sink_peak = max(r["sink_bytes"] for r in rows)
    if args.sink_limit and sink_peak > args.sink_limit:
        problems.append(f"comparison records took {sink_peak / 2**20:.1f} MiB on disk, over the "
                        f"{args.sink_limit / 2**20:.1f} MiB that rotation allows")
    if requests and errors / requests > args.max_errors:
        problems.append(f"{errors} of {requests} requests failed: {by_status}")
    if p99_q2 and p99_q4 and statistics.median(p99_q4) > 2 * statistics.median(p99_q2):
        notes.append(f"p99 drifted up: {statistics.median(p99_q2):.2f} → {statistics.median(p99_q4):.2f} ms "
                     "(median of the second and the last quarter's intervals)")

    print()
    print(f"run: {duration:.0f} s, {len(rows)} samples, {requests} requests ({ok} OK; {by_status}), "
          f"gateway CPU {100 * cpu:.0f} % of one core")
    print(f"RSS: {rss_mid / 1024:.1f} MiB at mid-run, {rss_end / 1024:.1f} MiB at the end ({100 * rss_growth:+.2f} %); "
          f"range after warm-up {min(r['rss_kib'] for r in measured) / 1024:.1f}–"
          f"{max(r['rss_kib'] for r in measured) / 1024:.1f} MiB")
    print(f"fds: {min(r['fds'] for r in measured):.0f}–{max(r['fds'] for r in measured):.0f} after warm-up "
          f"(2nd quarter max {fds_q2:.0f}, last quarter max {fds_q4:.0f}); threads: "
          f"{min(r['threads'] for r in measured):.0f}–{max(r['threads'] for r in measured):.0f}")
    if p99_q2 and p99_q4:
        print(f"p99 (worst generator per interval): 2nd quarter median {statistics.median(p99_q2):.2f} ms, last "
              f"quarter median {statistics.median(p99_q4):.2f} ms, worst interval {max(p99_q2 + p99_q4):.2f} ms")
    print(f"comparison records on disk: at most {sink_peak / 2**20:.1f} MiB in "
          f"{max(r['sink_files'] for r in rows):.0f} files")
    if sink:
        print("sink records: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sink.items())))
    for note in notes:
        print(f"note: {note}")
    leaking = any(p.startswith(("RSS", "open file", "threads", "comparison records")) for p in problems)
    verdict = "LEAK" if leaking else "FAILED" if problems else "FLAT"
    print(f"verdict: {verdict}" + ("" if not problems else ": " + "; ".join(problems)))

    if args.summary:
        with open(args.summary, "w") as f:
            json.dump({
                "duration_s": duration, "samples": len(rows), "requests": requests, "ok": ok, "by_status": by_status,
                "rss_mid_kib": rss_mid, "rss_end_kib": rss_end, "rss_growth": rss_growth,
                "fds_q2_max": fds_q2, "fds_q4_max": fds_q4, "threads_q2_max": threads_q2,
                "threads_q4_max": threads_q4,
                "p99_q2_median_ms": statistics.median(p99_q2) if p99_q2 else None,
                "p99_q4_median_ms": statistics.median(p99_q4) if p99_q4 else None,
                "gateway_cpu_fraction": cpu, "sink": sink, "sink_peak_bytes": sink_peak, "problems": problems, "notes": notes, "verdict": verdict,
            }, f, indent=2)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
