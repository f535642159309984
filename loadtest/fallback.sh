#!/usr/bin/env bash
# A canary failing 20 % of its calls, with the route's fallback off and on: the client-visible failures and latency.
# Model `labels` (Tests/EndToEnd/label_models.py): version 1 is the baseline; version 2, the canary, has a label table
# two labels short, so its engine fails every call it reads as an 8 or a 9. The inputs cycle through ten demo samples,
# two of them an 8 or a 9, so the canary fails 20 % of the calls it gets; the route splits 50/50. Fallback off is the
# anchor (≈ 10 % of all calls fail); with `fallback: {to: baseline}` the goal is 0 failed calls while the deadline
# (--timeout-ms) allows. Closed loop (switchyard-load), the modes alternated ROUNDS times on fresh gateways; prints each
# run and the medians.
#   loadtest/fallback.sh [CONCURRENCY=16] [SECONDS=15] [ROUNDS=3] [TIMEOUT_MS=1000]
# Binaries: SWITCHYARD_BIN and SWITCHYARD_LOAD_BIN, else the release build (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY=${1:-16}
SECONDS_PER_RUN=${2:-15}
ROUNDS=${3:-3}
TIMEOUT_MS=${4:-1000}
source loadtest/lib.sh
python="$venv/bin/python"
[ -x "$python" ] || { echo "the test environment is missing ($venv): scripts/bootstrap.sh"; exit 1; }
gateway_and_load_bins
make_work

# The repository (slo_ms loosened so that the pools' deadline shedding does not blur the comparison) and the inputs.
"$python" - "$work" <<'PY'
import sys, pathlib
import numpy as np
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(pathlib.Path("Tests/EndToEnd").resolve()))
from label_models import samples, write_repository
write_repository(root / "repo", slo_ms=500)
pixels, digits = samples()
failing = [i for i, d in enumerate(digits) if d >= 8][:2]
others = [i for i, d in enumerate(digits) if d < 8][:8]
np.save(root / "mix.npy", pixels[failing + others])
PY
for mode in off on; do
    fallback=""
    [ "$mode" = on ] && fallback="    fallback: {to: baseline, on: [invalid_argument, internal, unavailable, resource_exhausted], deadline_margin_ms: 5}"
    cat >"$work/$mode.yaml" <<YAML
model_repository: $work/repo
routes:
  - model: labels
    policy: canary
    versions: [{version: 1, weight: 50}, {version: 2, weight: 50}]
$fallback
YAML
done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# measure MODE ROUND → one line: mode calls failed fallbacks p50_ms p99_ms
measure() {
    local mode=$1 round=$2 p admin
    p=$(port); admin=$(port)
    "$bin" serve --config "$work/$mode.yaml" --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$admin" \
        --rest-listen "" >"$work/$mode-$round.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    "$load" --target "127.0.0.1:$p" --model labels --input "$work/mix.npy" --input-name pixels \
        --concurrency "$CONCURRENCY" --warmup 2 --duration "$SECONDS_PER_RUN" --timeout-ms "$TIMEOUT_MS" \
        --quiet --output "$work/$mode-$round.json" >/dev/null
    local fallbacks by_code
    curl -s "http://127.0.0.1:$admin/metrics" >"$work/$mode-$round.metrics"
    fallbacks=$(awk '/^switchyard_fallback_calls_total\{.*outcome="answered"/ {s += $NF} END {print s + 0}' \
        "$work/$mode-$round.metrics")
    by_code=$(grep '^switchyard_fallback_calls_total{' "$work/$mode-$round.metrics" \
        | sed -E 's/.*code="([a-z_]+)",outcome="([a-z_]+)"\} ([0-9]+)/\1:\2=\3/' | paste -sd, - || true)
    kill -TERM "$pid"; wait "$pid" || true
    "$python" - "$work/$mode-$round.json" "$mode" "$fallbacks" "${by_code:-none}" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["summary"]
failed = sum(n for status, n in run["byStatus"].items() if status != "OK")
calls = sum(run["byStatus"].values())
print(f'{sys.argv[2]:>3} calls={calls} failed={failed} ({100 * failed / max(calls, 1):.2f} %) '
      f'fallbacks_with_warmup={sys.argv[3]} p50_ms={run["latencyMs"]["p50"]:.3f} p99_ms={run["latencyMs"]["p99"]:.3f} '
      f'statuses={json.dumps(run["byStatus"], sort_keys=True, separators=(",", ":"))} fallback_by_code={sys.argv[4]}')
PY
}

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "concurrency $CONCURRENCY, ${SECONDS_PER_RUN} s per run, deadline ${TIMEOUT_MS} ms, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for mode in off on; do measure "$mode" "$round" | tee -a "$work/lines"; done
done
"$python" - "$work/lines" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    mode = line.split()[0]
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rows.setdefault(mode, []).append({k: float(v) for k, v in fields.items()})
med = {m: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for m, runs in rows.items()}
for mode in ("off", "on"):
    m = med[mode]
    print(f"median {mode:>3}: failed {m['failed']:.0f} of {m['calls']:.0f} calls, fallbacks (warm-up included) {m['fallbacks_with_warmup']:.0f}, "
          f"p50 {m['p50_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms")
print(f"failed calls on/off: {med['on']['failed']:.0f}/{med['off']['failed']:.0f}; "
      f"p99 on/off: {med['on']['p99_ms'] / med['off']['p99_ms']:.2f}")
PY
