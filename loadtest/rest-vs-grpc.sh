#!/usr/bin/env bash
# Server CPU per batch-1 inference over REST with JSON tensors, REST with the binary tensor data extension, gRPC,
# and gRPC with the input and outputs in system shared memory, with the same client (perf_analyzer, closed loop,
# 8 in flight) against one gateway, on the demo model (digits, 64 inputs) and on a 784-wide input (the
# 784→1024→1024→10 MLP of loadtest/peers/make_mlp.py), in one run.
#   loadtest/rest-vs-grpc.sh [RUNS=5] [MODELS=digits,mlp]
# Measurement windows of 2 s, accepted once three agree within 500 % (the figure kept is CPU over calls, not
# perf_analyzer's own stability; a busy build host never settles to 50 %).
# CPU per call = the gateway's CPU time over a perf_analyzer run / the calls the model's statistics counted in it.
# Prints per-run figures, the medians, their ratios to gRPC and the host CPU. SWITCHYARD_BIN=path skips the
# release build. BASELINE_BIN=path also starts that binary's gateway and measures it in the same rounds, mode by
# mode alternating with the first (before/after comparisons under the same machine load).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
MODELS=${2:-digits,mlp}
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
perf_analyzer=$(command -v perf_analyzer || echo "$venv/bin/perf_analyzer")
if [[ -n "${SWITCHYARD_BIN:-}" ]]; then
    bin=$(dirname "$SWITCHYARD_BIN")
else
    swift build -c release --product switchyard >/dev/null
    bin=$(swift build -c release --show-bin-path)
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# One repository with both models: digits as shipped, the MLP written with fixed-seed weights.
mkdir -p "$work/models/mlp/1"
cp -r models/digits "$work/models/digits"
"$venv/bin/python" loadtest/peers/make_mlp.py "$work/models/mlp/1/model.onnx" >/dev/null
printf 'max_batch_size: 64\nworkers: 1\nslo_ms: 50\nmax_queue_size: 4096\n' >"$work/models/mlp/config.yaml"
# The values every call sends: the first digits sample, and fixed-seed normal floats for the MLP (perf_analyzer's
# own random data is raw bits, NaNs included, which JSON cannot carry).
"$venv/bin/python" - "$work" <<'PY'
import json, sys
import numpy as np
samples = json.load(open("models/digits/samples.json"))
json.dump({"data": [{"pixels": [float(v) for v in np.asarray(samples["pixels"], np.float32)[0]]}]},
          open(sys.argv[1] + "/digits.json", "w"))
row = np.random.default_rng(7).standard_normal(784).astype(np.float32)
json.dump({"data": [{"input": [float(v) for v in row]}]}, open(sys.argv[1] + "/mlp.json", "w"))
PY

clock_ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
calls() {  # calls counted for model $2 by the gateway whose REST port is $1
    curl -s "http://127.0.0.1:$1/v2/models/$2/stats" \
        | python3 -c 'import json, sys; print(sum(m["inference_count"] for m in json.load(sys.stdin)["model_stats"]))'
}

# gateway LABEL BINARY: starts one, sets ${LABEL}_pid, _grpc, _rest.
gateway() {
    local label=$1 binary=$2 g r
    g=$(port)
    r=$(port)
    "$binary" serve --model-repository "$work/models" --log-level warning --listen "127.0.0.1:$g" \
        --rest-listen "127.0.0.1:$r" --admin-listen "127.0.0.1:$(port)" >"$work/$label.log" 2>&1 &
    printf -v "${label}_pid" '%s' $!
    printf -v "${label}_grpc" '%s' "$g"
    printf -v "${label}_rest" '%s' "$r"
    wait_port "$g"
    wait_port "$r"
}
labels=(new)
gateway new "$bin/switchyard"
if [[ -n "${BASELINE_BIN:-}" ]]; then
    labels=(base new)
    gateway base "$BASELINE_BIN"
fi

measure() {  # LABEL MODEL MODE
    local label=$1 model=$2 mode=$3 args=()
    local pid_var=${label}_pid grpc_var=${label}_grpc rest_var=${label}_rest
    local pid=${!pid_var} grpc=${!grpc_var} rest=${!rest_var}
    case $mode in
        rest-json) args=(-u "127.0.0.1:$rest" --input-tensor-format json --output-tensor-format json) ;;
        rest-binary) args=(-u "127.0.0.1:$rest") ;;
        grpc) args=(-i grpc -u "127.0.0.1:$grpc") ;;
        grpc-shm) args=(-i grpc -u "127.0.0.1:$grpc" --shared-memory system) ;;
    esac
    local before_cpu before_calls after_cpu after_calls out="$work/$label-$model-$mode"
    before_calls=$(calls "$rest" "$model")
    before_cpu=$(cpu_ticks "$pid")
    if ! "$perf_analyzer" -m "$model" -b 1 --concurrency-range 8 --measurement-interval 2000 \
        --stability-percentage 500 --input-data "$work/$model.json" -f "$out.csv" "${args[@]}" >"$out.out" 2>&1; then
        echo "perf_analyzer failed for $label $model $mode:" >&2
        tail -20 "$out.out" >&2
        exit 1
    fi
    after_cpu=$(cpu_ticks "$pid")
    after_calls=$(calls "$rest" "$model")
    local rps
    rps=$(python3 -c 'import csv, sys; print(list(csv.DictReader(open(sys.argv[1])))[0]["Inferences/Second"])' \
        "$out.csv")
    awk -v l="$label" -v m="$model" -v o="$mode" -v t=$((after_cpu - before_cpu)) -v hz="$clock_ticks" \
        -v n=$((after_calls - before_calls)) -v r="$rps" 'BEGIN {printf "%s %s %s %.1f %.2f %d\n", l, m, o, r, t / hz * 1e6 / n, n}'
}

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=, read -r -a models <<<"$MODELS"
modes=(rest-json rest-binary grpc grpc-shm)
for label in "${labels[@]}"; do
    for model in "${models[@]}"; do measure "$label" "$model" grpc >/dev/null; done   # warm-up
done
results=()
for i in $(seq "$RUNS"); do
    for model in "${models[@]}"; do
        for mode in "${modes[@]}"; do
            for label in "${labels[@]}"; do
                r=$(measure "$label" "$model" "$mode")
                echo "run $i: $(echo "$r" | awk '{printf "%-4s %-6s %-11s %9.0f infer/s  %8.2f µs server CPU/call  (%d calls)", $1, $2, $3, $4, $5, $6}')"
                results+=("$r")
            done
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for label in "${labels[@]}"; do
    pid_var=${label}_pid
    kill -TERM "${!pid_var}"
    wait "${!pid_var}" || true
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
labels = list(dict.fromkeys(r[0] for r in rows))
models = list(dict.fromkeys(r[1] for r in rows))
modes = ("rest-json", "rest-binary", "grpc", "grpc-shm")
print("median server CPU per call, µs (ratio to gRPC on the same gateway):")
print("%-4s %-6s" % ("", "model") + "".join("%22s" % m for m in modes))
for label in labels:
    for model in models:
        med = {m: statistics.median(float(r[4]) for r in rows if r[:3] == [label, model, m]) for m in modes}
        print("%-4s %-6s" % (label, model) + "".join("%13.2f (%5.2fx)" % (med[m], med[m] / med["grpc"]) for m in modes))
'
