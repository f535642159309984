#!/usr/bin/env python3
"""Self-contained HTML reports for switchyard-load results (inline SVG, no scripts, no network).

  report.py RESULT.json [-o report.html]              one run: summary table, latency percentiles over time,
                                                      throughput over time, latency CDF, share of traffic per
                                                      version over time, errors over time
  report.py A.json B.json [C.json …] [-o compare.html] several runs side by side: summary table with ratios to
                                                      the first, overlaid CDFs, throughput and p99 over time

Standard library only; opens offline in any browser.
"""

import argparse
import html
import json
import math
import pathlib
import sys

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
W, H = 820, 260
ML, MR, MT, MB = 64, 210, 20, 40


def esc(s):
    return html.escape(str(s))


def nice_max(v):
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.3g}"


class Chart:
    """A line/area chart in SVG with linear or log axes."""

    def __init__(self, title, xlabel, ylabel, xlog=False, ylog=False, xmax=None, ymax=None, xmin=None, ymin=None,
                 xticks=None):
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.xticks = xticks  # [(value, label)] to override the automatic ticks
        self.xlog, self.ylog = xlog, ylog
        self.series = []  # (name, points, color, kind)
        self.markers = []  # (x, label): vertical lines, e.g. a scenario's admin calls
        self.xmax, self.ymax, self.xmin, self.ymin = xmax, ymax, xmin, ymin

    def add(self, name, points, color, kind="line"):
        pts = [(x, y) for x, y in points if x is not None and y is not None]
        self.series.append((name, pts, color, kind))

    def mark(self, events):
        """Vertical markers at the times of a run's events (admin calls), numbered like the events table."""
        self.markers = [(e["t"], str(i + 1)) for i, e in enumerate(events or [])]
        return self

    def _range(self):
        xs = [x for _, p, _, _ in self.series for x, _ in p] or [0, 1]
        ys = [y for _, p, _, _ in self.series for _, y in p] or [0, 1]
        if self.xlog:
            x0, x1 = self.xmin or max(min(x for x in xs if x > 0) if any(x > 0 for x in xs) else 1e-3, 1e-9), self.xmax or max(xs)
        else:
            x0, x1 = self.xmin if self.xmin is not None else min(0, min(xs)), self.xmax if self.xmax is not None else max(xs)
        if self.ylog:
            pos = [y for y in ys if y > 0] or [1]
            y0, y1 = self.ymin or 10 ** math.floor(math.log10(min(pos))), self.ymax or 10 ** math.ceil(math.log10(max(pos)))
        else:
            y0, y1 = self.ymin if self.ymin is not None else 0, self.ymax if self.ymax is not None else nice_max(max(ys))
        if x1 <= x0:
            x1 = x0 + 1
        if y1 <= y0:
            y1 = y0 + 1
        return x0, x1, y0, y1

    def render(self):
        x0, x1, y0, y1 = self._range()
        pw, ph = W - ML - MR, H - MT - MB

        def sx(x):
            if self.xlog:
                x = max(x, x0)
                return ML + (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) * pw
            return ML + (x - x0) / (x1 - x0) * pw

        def sy(y):
            if self.ylog:
                y = max(y, y0)
                return MT + ph - (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * ph
            return MT + ph - (y - y0) / (y1 - y0) * ph

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" class="chart">',
               f'<rect width="{W}" height="{H}" fill="white"/>']
        out.append(f'<text x="{ML}" y="14" font-weight="600" font-size="13" font-family="sans-serif">{esc(self.title)}</text>')
        # grid and ticks
        if self.ylog:
            yt = [10 ** e for e in range(int(round(math.log10(y0))), int(round(math.log10(y1))) + 1)]
        else:
            yt = [y0 + (y1 - y0) * i / 5 for i in range(6)]
        for y in yt:
            out.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eeeeee"/>')
            out.append(f'<text x="{ML - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="11" fill="#444" font-family="sans-serif">{fmt(y)}</text>')
        if self.xticks:
            xt = [(x, label) for x, label in self.xticks if x0 <= x <= x1]
        else:
            xt = [(x, fmt(x)) for x in (x0 + (x1 - x0) * i / 6 for i in range(7))]
        for x, label in xt:
            out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{MT}" y2="{MT + ph}" stroke="#eeeeee"/>')
            out.append(f'<text x="{sx(x):.1f}" y="{MT + ph + 16}" text-anchor="middle" font-size="11" fill="#444" font-family="sans-serif">{esc(label)}</text>')
        out.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#bbbbbb"/>')
        out.append(f'<text x="{ML + pw / 2}" y="{H - 6}" text-anchor="middle" font-size="12" fill="#444" font-family="sans-serif">{esc(self.xlabel)}</text>')
        out.append(
            f'<text transform="translate(14,{MT + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#444" font-family="sans-serif">{esc(self.ylabel)}</text>'
        )
        for x, label in self.markers:
            if x0 <= x <= x1:
                out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{MT}" y2="{MT + ph}" stroke="#d62728" stroke-dasharray="4,3"/>')
                out.append(f'<text x="{sx(x) + 3:.1f}" y="{MT + 11}" font-size="11" fill="#d62728" font-family="sans-serif">{esc(label)}</text>')
        for i, (name, pts, color, kind) in enumerate(self.series):
            if not pts:
                continue
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            if kind == "area":
                # pts are (x, y_top) with a matching base carried in name tuple
                out.append(f'<polygon points="{d}" fill="{color}" fill-opacity="0.75" stroke="none"/>')
            elif kind == "step":
                out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>')
            else:
                out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>')
            ly = MT + 12 + i * 16
            short = name if len(name) <= 32 else name[:31] + "…"
            out.append(f'<rect x="{ML + pw + 10}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
            out.append(f'<text x="{ML + pw + 24}" y="{ly}" font-size="11" fill="#444" font-family="sans-serif">{esc(short)}</text>')
        out.append("</svg>")
        return "\n".join(out)


def nines(p):
    """Maps a percentile to 'number of nines': 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 …"""
    return math.log10(1.0 / max(1e-7, 1.0 - p / 100.0))


NINES_TICKS = [(0, "0%"), (1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%"), (5, "99.999%"), (6, "99.9999%")]


def cdf_chart(title):
    return Chart(title, "percentile (log scale of 1/(1-p))", "ms", ylog=True, xmin=0, xticks=NINES_TICKS)


def cdf_points(result):
    return [(nines(p["percentile"]), p["latencyMs"]) for p in result["cdf"] if p["percentile"] < 100]


def interval_latency(iv, key):
    lat = iv.get("latencyMs")
    return lat.get(key) if lat else None


def single_report(r):
    s, st, h = r["summary"], r["settings"], r["harness"]
    t = [iv["t"] for iv in r["intervals"]]
    step = st.get("intervalSeconds", 1) or 1
    parts = []
    mode = (
        f"open loop, {st['arrival']} arrivals, stages "
        + ", ".join(
            f"{g['duration']:g}s@{g['startRate']:g}" + (f"→{g['endRate']:g}" if g["endRate"] != g["startRate"] else "")
            for g in st["stages"]
        )
        if st["mode"] == "open"
        else f"closed loop, concurrency {st['concurrency']}"
    )
    deadline = f" · deadline {st['timeoutMs']:g} ms" if st["timeoutMs"] else ""
    parts.append(f"<p>{esc(st['target'])} {esc(st['path'])} · model {esc(st['model'])}"
                 f"{(' v' + esc(st['version'])) if st['version'] else ''} · {esc(mode)} · warm-up {st['warmupSeconds']:g}s"
                 f" · {st['connections']} connections × {st['streamsPerConnection']} streams, {st['threads']} thread(s)"
                 f" · batch {st['batch']} · input {esc(st['input'])}"
                 f"{deadline} · started {esc(r['startedAt'])}</p>")
    if h.get("bottleneck"):
        parts.append(f'<p class="warn">The load generator may have been the bottleneck: {esc(h["note"])}</p>')
    rows = [
        ("measured", f"{r['measuredSeconds']:.1f} s"),
        ("offered rate", f"{s['offeredRate']:,.0f} req/s"),
        ("throughput (all / OK)", f"{s['throughput']:,.0f} / {s['okThroughput']:,.0f} req/s"),
        ("requests (completed / OK / errors / unfinished)", f"{s['completed']:,} / {s['ok']:,} / {s['errors']:,} / {s['unfinished']:,}"),
    ]
    lat = s["latencyMs"]
    for name, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"), ("mean", "mean")):
        rows.append((f"latency {name}", f"{lat[key]:.3f} ms (service {s['serviceLatencyMs'][key]:.3f} ms)"))
    rows.append(("by status", ", ".join(f"{k} {v:,}" for k, v in sorted(s["byStatus"].items()))))
    rows.append(("by version", ", ".join(f"{k or '?'} {v:,}" for k, v in sorted(s["byVersion"].items()))))
    for k, v in sorted(s.get("errorMessages", {}).items()):
        rows.append((f"first {k} message", v))
    rows.append(("generator", f"{h['cpuPerRequestUs']:.2f} µs CPU/request, scheduling lag p99 {h['schedulingLagMs']['p99']:.3f} ms, "
                 f"send delay p99 {h['sendDelayMs']['p99']:.3f} ms, max backlog {h['maxBacklog']:,}, dropped {h['dropped']:,}"))
    if r.get("serverCPU"):
        rows.append(("server CPU", f"{r['serverCPU']['cpuPerRequestUs']:.2f} µs/request ({r['serverCPU']['cpuSeconds']:.2f} s, pid {r['serverCPU']['pid']})"))
    parts.append("<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>")
    events = r.get("events") or []
    if events:
        parts.append("<h3>Admin calls during the run (red dashed lines on the charts)</h3><table>"
                     + "<tr><th>#</th><th>at</th><th>what</th><th>call</th><th>status</th><th>answer</th></tr>"
                     + "".join(f"<tr><td>{i + 1}</td><td>{e['t']:.1f} s</td><td>{esc(e['label'])}</td><td>{esc(e['request'])}</td>"
                               f"<td>{e['status']}</td><td><code>{esc(e['answer'][:160])}</code></td></tr>"
                               for i, e in enumerate(events))
                     + "</table>")

    c = Chart("Latency percentiles over time", "seconds", "ms", ylog=True).mark(events)
    for i, (name, key) in enumerate((("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))):
        c.add(name, [(x, interval_latency(iv, key)) for x, iv in zip(t, r["intervals"])], PALETTE[i])
    parts.append(c.render())

    c = Chart("Throughput over time", "seconds", "requests/s").mark(events)
    c.add("offered", [(x, iv["offered"] / step) for x, iv in zip(t, r["intervals"])], "#999999")
    c.add("completed", [(x, iv["completed"] / step) for x, iv in zip(t, r["intervals"])], PALETTE[0])
    c.add("OK", [(x, iv["ok"] / step) for x, iv in zip(t, r["intervals"])], PALETTE[2])
    parts.append(c.render())

    c = cdf_chart("Latency CDF (open loop: from intended send time)")
    c.add(st["label"], cdf_points(r), PALETTE[0])
    parts.append(c.render())

    versions = sorted({v for iv in r["intervals"] for v in iv["byVersion"]})
    c = Chart("Share of OK traffic per version over time", "seconds", "% of OK responses", ymax=100).mark(events)
    base = [0.0] * len(t)
    for i, v in enumerate(versions):
        top = []
        for j, iv in enumerate(r["intervals"]):
            total = sum(iv["byVersion"].values())
            top.append(base[j] + (100.0 * iv["byVersion"].get(v, 0) / total if total else 0))
        poly = list(zip(t, top)) + list(reversed(list(zip(t, base))))
        c.add(f"version {v or '?'}", poly, PALETTE[i % len(PALETTE)], kind="area")
        base = top
    parts.append(c.render())

    statuses = sorted({k for iv in r["intervals"] for k in iv["byStatus"] if k != "OK"})
    c = Chart("Errors over time", "seconds", "errors/s").mark(events)
    if not statuses:
        c.add("no errors", [(x, 0) for x in t], "#999999")
    for i, k in enumerate(statuses):
        c.add(k, [(x, iv["byStatus"].get(k, 0) / step) for x, iv in zip(t, r["intervals"])], PALETTE[(i + 1) % len(PALETTE)])
    parts.append(c.render())
    return st["label"], "\n".join(parts)


def compare_report(results):
    parts = []
    first = results[0]["summary"]
    head = "<tr><th></th>" + "".join(f"<th>{esc(r['settings']['label'])}</th>" for r in results) + "</tr>"
    metrics = [
        ("mode", lambda r: r["settings"]["mode"] + (f" c={r['settings']['concurrency']}" if r["settings"]["mode"] == "closed" else "")),
        ("offered req/s", lambda r: f"{r['summary']['offeredRate']:,.0f}"),
        ("OK req/s", lambda r: f"{r['summary']['okThroughput']:,.0f} ({r['summary']['okThroughput'] / max(first['okThroughput'], 1e-9):.2f}×)"),
        ("errors", lambda r: f"{r['summary']['errors']:,}"),
        ("p50 ms", lambda r: f"{r['summary']['latencyMs']['p50']:.3f} ({r['summary']['latencyMs']['p50'] / max(first['latencyMs']['p50'], 1e-9):.2f}×)"),
        ("p99 ms", lambda r: f"{r['summary']['latencyMs']['p99']:.3f} ({r['summary']['latencyMs']['p99'] / max(first['latencyMs']['p99'], 1e-9):.2f}×)"),
        ("p99.9 ms", lambda r: f"{r['summary']['latencyMs']['p999']:.3f}"),
        ("max ms", lambda r: f"{r['summary']['latencyMs']['max']:.3f}"),
        ("server CPU µs/req", lambda r: f"{r['serverCPU']['cpuPerRequestUs']:.1f}" if r.get("serverCPU") else "–"),
        ("generator CPU µs/req", lambda r: f"{r['harness']['cpuPerRequestUs']:.1f}"),
        ("generator bottleneck", lambda r: esc(r["harness"]["note"]) if r["harness"]["bottleneck"] else "no"),
    ]
    body = "".join("<tr><th>" + esc(n) + "</th>" + "".join(f"<td>{esc(f(r))}</td>" for r in results) + "</tr>" for n, f in metrics)
    parts.append(f"<p>Ratios in parentheses are to the first run ({esc(results[0]['settings']['label'])}).</p>")
    parts.append(f"<table>{head}{body}</table>")
    c = cdf_chart("Latency CDF")
    for i, r in enumerate(results):
        c.add(r["settings"]["label"], cdf_points(r), PALETTE[i % 9])
    parts.append(c.render())
    c = Chart("OK throughput over time", "seconds", "requests/s")
    for i, r in enumerate(results):
        step = r["settings"].get("intervalSeconds", 1) or 1
        c.add(r["settings"]["label"], [(iv["t"], iv["ok"] / step) for iv in r["intervals"]], PALETTE[i % 9])
    parts.append(c.render())
    c = Chart("p99 latency over time", "seconds", "ms", ylog=True)
    for i, r in enumerate(results):
        c.add(r["settings"]["label"], [(iv["t"], interval_latency(iv, "p99")) for iv in r["intervals"]], PALETTE[i % 9])
    parts.append(c.render())
    return "Comparison of " + ", ".join(r["settings"]["label"] for r in results), "\n".join(parts)


CSS = """
body { font: 14px/1.4 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; } table { border-collapse: collapse; margin: 12px 0 20px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; } th { background: #f6f6f6; }
.chart { display: block; margin: 8px 0 18px; } .title { font-weight: 600; font-size: 13px; }
.grid { stroke: #eee; } .frame { fill: none; stroke: #bbb; } .tick, .legend { font-size: 11px; fill: #444; }
.axis { font-size: 12px; fill: #444; } .warn { background: #fff3cd; padding: 8px; border: 1px solid #e0c36a; }
"""


def page(title, body):
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><h1>{esc(title)}</h1>{body}<p style='color:#888'>switchyard-load report</p></body></html>")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="switchyard-load JSON result files")
    parser.add_argument("-o", "--output", help="HTML file to write (default: next to the first result)")
    args = parser.parse_args()
    results = []
    for path in args.results:
        try:
            data = json.loads(pathlib.Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            sys.exit(f"report.py: {path}: cannot read a result file ({error})")
        if data.get("schema") != "switchyard-load/1":
            sys.exit(f"report.py: {path}: expected a switchyard-load/1 result, got schema {data.get('schema')!r}")
        results.append(data)
    title, body = single_report(results[0]) if len(results) == 1 else compare_report(results)
    out = pathlib.Path(args.output or pathlib.Path(args.results[0]).with_suffix(".html"))
    out.write_text(page(title, body))
    print(out)


if __name__ == "__main__":
    main()
