#!/usr/bin/env bash
# Server CPU per batch-1 inference on the demo model over REST with JSON tensors, REST with the binary tensor data
# extension, and gRPC, with the same client (perf_analyzer, closed loop, 8 in flight) against one gateway.
#   loadtest/rest-vs-grpc.sh [RUNS=5]
# CPU per call = the gateway's CPU time over a perf_analyzer run / the calls the model's statistics counted in it.
# Prints per-run figures, the medians and the host CPU. SWITCHYARD_BIN=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
RUNS=${1:-5}
perf_analyzer=$(command -v perf_analyzer || echo "$venv/bin/perf_analyzer")
bin=$(release_bin)
make_work

calls() {
    curl -s "http://127.0.0.1:$rest/v2/models/digits/stats" \
        | python3 -c 'import json, sys; print(sum(m["inference_count"] for m in json.load(sys.stdin)["model_stats"]))'
}

grpc=$(port)
rest=$(port)
admin=$(port)
"$bin/switchyard" serve --model-repository models --log-level warning --listen "127.0.0.1:$grpc" \
    --rest-listen "127.0.0.1:$rest" --admin-listen "127.0.0.1:$admin" >"$work/gateway.log" 2>&1 &
pid=$!
wait_port "$grpc"

measure() {
    local mode=$1 args=()
    case $mode in
        rest-json) args=(-u "127.0.0.1:$rest" --input-tensor-format json --output-tensor-format json) ;;
        rest-binary) args=(-u "127.0.0.1:$rest") ;;
        grpc) args=(-i grpc -u "127.0.0.1:$grpc") ;;
    esac
    local before_cpu before_calls after_cpu after_calls
    before_calls=$(calls)
    before_cpu=$(cpu_ticks $pid)
    "$perf_analyzer" -m digits -b 1 --concurrency-range 8 --measurement-interval 2000 --stability-percentage 50 \
        -f "$work/$mode.csv" "${args[@]}" >"$work/$mode.out" 2>&1
    after_cpu=$(cpu_ticks $pid)
    after_calls=$(calls)
    local rps
    rps=$(python3 -c 'import csv, sys; print(list(csv.DictReader(open(sys.argv[1])))[0]["Inferences/Second"])' \
        "$work/$mode.csv")
    awk -v m="$mode" -v t=$((after_cpu - before_cpu)) -v hz="$clock_ticks" -v n=$((after_calls - before_calls)) \
        -v r="$rps" 'BEGIN {printf "%s %.1f %.2f %d\n", m, r, t / hz * 1e6 / n, n}'
}

host_line
measure grpc >/dev/null   # warm-up
results=()
for i in $(seq "$RUNS"); do
    for mode in rest-json rest-binary grpc; do
        r=$(measure "$mode")
        echo "run $i: $(echo "$r" | awk '{printf "%-12s %9.0f infer/s  %7.2f µs server CPU/call  (%d calls)", $1, $2, $3, $4}')"
        results+=("$r")
    done
done
kill -TERM $pid
wait $pid || true
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {k: statistics.median(float(r[2]) for r in rows if r[0] == k) for k in ("rest-json", "rest-binary", "grpc")}
print("median server CPU per call: REST JSON %.2f us, REST binary %.2f us, gRPC %.2f us (REST binary / gRPC %.2fx, REST JSON / gRPC %.2fx)"
      % (med["rest-json"], med["rest-binary"], med["grpc"], med["rest-binary"] / med["grpc"], med["rest-json"] / med["grpc"]))
'
