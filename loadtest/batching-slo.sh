#!/usr/bin/env bash
# The adaptive micro-batcher through the whole gateway on the 784→1024→1024→10 MLP (loadtest/peers/make_mlp.py):
#   0. one request in flight, with and without batching → p50 of each (batching should add nothing);
#   1. saturation: closed loop at 256 in flight → the highest sustained throughput, with batching
#      (max_batch_size 64) and without (max_batch_size 1), and their ratio;
#   2. open-loop Poisson arrivals at 50 %, 70 % and 90 % of the batching saturation rate with a 100 ms
#      deadline → p50/p99 from the intended send time against the model's latency target (slo_ms 10), errors,
#      and the share of calls the gateway itself answered within 10 ms of decoding them (its latency histogram).
# Each step runs ROUNDS times and the medians are printed (switchyard-load, one generator thread).
# PLACEMENT `shared` (the default) lets the kernel place every thread; `pinned` gives the model's workers the
# last CPU (worker_cpus) and puts the event loop and the generator on the first (--io-cpus, taskset), the way
# a deployment gives its workers cores of their own (here the generator has to share the loop's core).
#   loadtest/batching-slo.sh [SECONDS=10] [ROUNDS=3] [PLACEMENT=shared|pinned]
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
PLACEMENT=${3:-shared}
gateway_cpus=() worker_cpus="" generator=()
case $PLACEMENT in
    shared) ;;
    pinned)
        cpus=$(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[-1]) if len(c) > 1 else None')
        [ -n "$cpus" ] || { echo "pinned placement needs at least 2 CPUs" >&2; exit 2; }
        read -r first last <<<"$cpus"
        gateway_cpus=(--io-cpus "$first") worker_cpus="worker_cpus: $last" generator=(taskset -c "$first")
        ;;
    *) echo "PLACEMENT: expected shared or pinned, got '$PLACEMENT'" >&2; exit 2 ;;
esac
bash scripts/bootstrap.sh --test >/dev/null
for product in switchyard switchyard-load; do swift build -c release --product $product >/dev/null 2>&1; done
bin=$(swift build -c release --show-bin-path)
make_work

make_repo() {  # make_repo DIR MAX_BATCH
    mkdir -p "$1/mlp/1"
    cp "$work/mlp.onnx" "$1/mlp/1/model.onnx"
    printf 'max_batch_size: %s\nworkers: 1\nslo_ms: 10\nmax_queue_size: 4096\n%s\n' "$2" "$worker_cpus" >"$1/mlp/config.yaml"
}
"$venv/bin/python" loadtest/peers/make_mlp.py "$work/mlp.onnx" >/dev/null
make_repo "$work/batched" 64
make_repo "$work/unbatched" 1

# load REPO ARGS… → prints "throughput_ok p50 p99 errors" of one run
load() {
    local repo=$1; shift
    local p; p=$(port)
    local admin; admin=$(port)
    "$bin/switchyard" serve --model-repository "$repo" --listen "127.0.0.1:$p" --rest-listen "" --admin-listen "127.0.0.1:$admin" \
        "${gateway_cpus[@]}" --log-level warning >"$work/gateway.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    # Server CPU is read when the generator's 2 s warm-up ends and when the run ends.
    (sleep 2; awk '{print $14 + $15}' "/proc/$pid/stat" >"$work/cpu-before") &
    "${generator[@]}" "$bin/switchyard-load" --target "127.0.0.1:$p" --model mlp --input random --warmup 2 --quiet \
        --connections 4 --streams 128 --output "$work/run.json" "$@" >/dev/null
    local after; after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    local before; before=$(cat "$work/cpu-before")
    curl -s "http://127.0.0.1:$admin/metrics" >"$work/metrics.txt" || true
    kill -TERM $pid; wait $pid || true
    python3 - "$work/run.json" "$((after - before))" "$(getconf CLK_TCK)" "$work/metrics.txt" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1])); s = r["summary"]
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
# The gateway's own view (decode to response: queue + compute + routing) from its latency histogram: the share
# of calls that reached the pool and were answered within the 10 ms target (its bucket edge), warm-up included.
buckets = {}
for line in open(sys.argv[4]):
    m = re.match(r'switchyard_request_duration_seconds_bucket\{.*le="([^"]+)"\} (\d+)', line)
    if m: buckets[m.group(1)] = buckets.get(m.group(1), 0) + int(m.group(2))
within = buckets.get("0.01", 0) / buckets["+Inf"] * 100 if buckets.get("+Inf") else float("nan")
# Server CPU (all threads) per successful call; refused calls cost CPU too and are charged to it.
cpu_us = ticks / hz * 1e6 / max(1, s["ok"])
print(f'{s["okThroughput"]:.0f} {s["latencyMs"]["p50"]:.3f} {s["latencyMs"]["p99"]:.2f} {s["errors"]} {cpu_us:.1f} '
      f'{within:.2f}')
PY
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
col() { awk -v c="$1" '{print $c}'; }

# One request in flight: what batching costs a lone call (the adaptive batcher should not wait for company).
declare -A lone
for repo in batched unbatched; do lone[$repo]=""; done
for _ in $(seq "$ROUNDS"); do
    for repo in batched unbatched; do
        lone[$repo]+="$(load "$work/$repo" --concurrency 1 --duration "$SECONDS_PER_RUN" | col 2)"$'\n'
    done
done
b=$(printf '%s' "${lone[batched]}" | median); u=$(printf '%s' "${lone[unbatched]}" | median)
echo "one in flight: p50 with batching $b ms (runs: $(printf '%s' "${lone[batched]}" | tr '\n' ' ')), without" \
    "$u ms (runs: $(printf '%s' "${lone[unbatched]}" | tr '\n' ' ')) → $(awk -v b="$b" -v u="$u" 'BEGIN {printf "%+.0f", (b - u) * 1000}') µs"

declare -A sat cpu
for repo in batched unbatched; do
    runs=""
    for _ in $(seq "$ROUNDS"); do
        runs+="$(load "$work/$repo" --concurrency 256 --duration "$SECONDS_PER_RUN")"$'\n'
    done
    sat[$repo]=$(printf '%s' "$runs" | col 1 | median)
    cpu[$repo]=$(printf '%s' "$runs" | col 5 | median)
    echo "saturation, $repo: $(printf '%s' "$runs" | col 1 | tr '\n' ' ')req/s → median ${sat[$repo]} req/s;" \
        "server CPU per OK call $(printf '%s' "$runs" | col 5 | tr '\n' ' ')µs → median ${cpu[$repo]} µs"
done
echo "batching / no batching at saturation: $(awk -v a="${sat[batched]}" -v b="${sat[unbatched]}" 'BEGIN {printf "%.1f×", a / b}')" \
    "throughput, $(awk -v a="${cpu[batched]}" -v b="${cpu[unbatched]}" 'BEGIN {printf "%.1f×", b / a}') calls per server CPU-second"

for share in 50 70 90; do
    rate=$(awk -v s="${sat[batched]}" -v p=$share 'BEGIN {printf "%.0f", s * p / 100}')
    runs=""
    for _ in $(seq "$ROUNDS"); do
        runs+="$(load "$work/batched" --rate "$rate" --duration "$SECONDS_PER_RUN" --arrival poisson --timeout-ms 100)"$'\n'
    done
    echo "open loop at $share % ($rate req/s): ok $(printf '%s' "$runs" | col 1 | median) req/s," \
        "p50 $(printf '%s' "$runs" | col 2 | median) ms, p99 $(printf '%s' "$runs" | col 3 | median) ms" \
        "(runs: $(printf '%s' "$runs" | col 3 | tr '\n' ' ')ms), errors $(printf '%s' "$runs" | col 4 | tr '\n' ' ')," \
        "gateway-side within 10 ms: $(printf '%s' "$runs" | col 6 | tr '\n' ' ')%"
done
