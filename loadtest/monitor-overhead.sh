#!/usr/bin/env bash
# Server CPU per batch-1 ModelInfer on the demo model with monitoring off, and with payload capture at 1 % and
# drift detection on every call (reference from the first 10 000 rows), measured alternately with the same
# client (h2load, one connection, 64 concurrent streams).
#   loadtest/monitor-overhead.sh [REQUESTS=200000] [RUNS=5]
# Prints per-run figures, the medians, their ratio, and the host CPU. SWITCHYARD_BIN=path skips the release build
# and measures that binary instead; DRIFT_FRACTION (default 1) sets drift.fraction, the share of calls observed.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
REQUESTS=${1:-200000}
RUNS=${2:-5}
bin=$(release_bin)
make_work

"$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null
for kind in off on; do
    mkdir -p "$work/$kind/digits"
    cp -r models/digits/1 "$work/$kind/digits/1"
    cp models/digits/config.yaml "$work/$kind/digits/"
done
cat >>"$work/on/digits/config.yaml" <<YAML
capture:
  fraction: 0.01
  directory: $work/captured
drift:
  fraction: ${DRIFT_FRACTION:-1}
  reference_rows: 10000
  window: 10000
YAML

run() {
    local kind=$1 p admin
    p=$(port)
    admin=$(port)
    "$bin/switchyard" serve --model-repository "$work/$kind" --log-level warning --listen "127.0.0.1:$p" --rest-listen "" \
        --admin-listen "127.0.0.1:$admin" >"$work/$kind.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    # The warm-up calls also give drift detection its reference.
    local measured
    measured=$(h2load_cpu $pid "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" "$work/infer.bin" \
        20000 "$REQUESTS")
    local dropped
    dropped=$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^switchyard_monitor_dropped_total\{reason="queue_full"\}/ {print $2}')
    kill -TERM $pid; wait $pid || true
    echo "$kind $measured ${dropped:-0}"
}

host_line
results=()
for i in $(seq "$RUNS"); do
    for kind in off on; do
        r=$(run "$kind")
        echo "run $i: monitoring $kind $(echo "$r" | awk '{printf "%10.0f req/s  %6.2f µs CPU/req  (%s succeeded, %s dropped)", $2, $3, $4, $5}')"
        results+=("$r")
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {k: statistics.median(float(r[2]) for r in rows if r[0] == k) for k in ("off", "on")}
print("median server CPU per call: off %.2f us, capture 1%% + drift on %.2f us: %+.1f%%" % (med["off"], med["on"], (med["on"] / med["off"] - 1) * 100))
'
