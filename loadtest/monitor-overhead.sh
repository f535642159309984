#!/usr/bin/env bash
# Server CPU per batch-1 ModelInfer, two gateways measured alternately with the same client (h2load, one
# connection, 64 concurrent streams), as medians over RUNS rounds and their ratio:
#   COMPARE=monitor (default)  monitoring off vs payload capture at 1 % and drift detection (reference from the
#                              first 10 000 rows observed, complete before the measured calls; DRIFT_FRACTION,
#                              default 1, sets drift.fraction and MAX_CPU_SHARE, default the gateway's 0.02,
#                              drift.max_cpu_share: `null` observes DRIFT_FRACTION of calls whatever it costs);
#   COMPARE=tracing            tracing off vs tracing at TRACE_RATIO (default 0.01) of calls, exported over OTLP/HTTP
#                              to a real receiver (Tests/EndToEnd/otlp_receiver.py) started here;
#   COMPARE=binary             this build vs OLD_BIN (another build's switchyard, e.g. the commit before a change),
#                              both with monitoring and tracing off.
# MODEL=digits (default, 64 inputs) or mlp (the 784→1024→1024→10 MLP of loadtest/peers/make_mlp.py).
#   loadtest/monitor-overhead.sh [REQUESTS=200000] [RUNS=5]
# Prints per-run figures, the medians, their ratio, and the host CPU. SWITCHYARD_BIN=path skips the release build
# and measures that binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-200000}
RUNS=${2:-5}
COMPARE=${COMPARE:-monitor}
MODEL=${MODEL:-digits}
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
if [[ -n "${SWITCHYARD_BIN:-}" ]]; then
    bin=$(dirname "$SWITCHYARD_BIN")
else
    swift build -c release --product switchyard >/dev/null
    bin=$(swift build -c release --show-bin-path)
fi
case $COMPARE in
    monitor | tracing) old_bin=$bin ;;
    binary) old_bin=$(dirname "${OLD_BIN:?COMPARE=binary needs OLD_BIN=path/to/switchyard}") ;;
    *) echo "COMPARE: expected monitor, tracing or binary, got '$COMPARE'" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

for kind in off on; do
    mkdir -p "$work/$kind/$MODEL/1"
    case $MODEL in
        digits)
            cp models/digits/1/* "$work/$kind/digits/1/"
            cp models/digits/config.yaml "$work/$kind/digits/"
            ;;
        mlp)
            [[ -f "$work/mlp.onnx" ]] || "$venv/bin/python" loadtest/peers/make_mlp.py "$work/mlp.onnx" >/dev/null
            cp "$work/mlp.onnx" "$work/$kind/mlp/1/model.onnx"
            printf 'max_batch_size: 64\nworkers: 1\nslo_ms: 20\nmax_queue_size: 4096\n' >"$work/$kind/mlp/config.yaml"
            ;;
        *) echo "MODEL: expected digits or mlp, got '$MODEL'" >&2; exit 2 ;;
    esac
done
case $MODEL in
    digits) "$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null ;;
    mlp)
        "$venv/bin/python" - "$work/infer.bin" <<'PY'
import struct, sys
import numpy as np
from tritonclient.grpc import service_pb2
request = service_pb2.ModelInferRequest(model_name="mlp", id="bench")
request.inputs.add(name="input", datatype="FP32", shape=[1, 784])
request.raw_input_contents.append(np.random.default_rng(784).uniform(0, 1, (1, 784)).astype(np.float32).tobytes())
message = request.SerializeToString()
open(sys.argv[1], "wb").write(struct.pack(">BI", 0, len(message)) + message)
PY
        ;;
esac
echo "threads: 1" >"$work/off.yaml"
cp "$work/off.yaml" "$work/on.yaml"
case $COMPARE in
    monitor)
        cat >>"$work/on/$MODEL/config.yaml" <<YAML
capture:
  fraction: 0.01
  directory: $work/captured
drift:
  fraction: ${DRIFT_FRACTION:-1}
  reference_rows: 10000
  window: 10000
${MAX_CPU_SHARE:+  max_cpu_share: $MAX_CPU_SHARE}
YAML
        ;;
    tracing)
        receiver_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        (cd Tests/EndToEnd && exec "$venv/bin/python" -c "
import sys, time
from otlp_receiver import Receiver
receiver = Receiver($receiver_port)
while True:
    time.sleep(1)
    print(len(receiver.spans()), flush=True)
" >"$work/receiver.log" 2>&1) &
        printf 'tracing:\n  otlp_endpoint: http://127.0.0.1:%s/v1/traces\n  sample_ratio: %s\n' \
            "$receiver_port" "${TRACE_RATIO:-0.01}" >>"$work/on.yaml"
        ;;
esac

clock_ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# monitor_ticks PID: CPU ticks of the threads doing what is compared, off the request path: the monitor thread
# (drift and capture), or the tracing thread (which also runs swift-otel's processor and exporter tasks), the Swift
# concurrency threads (named `…default-qos…`) and the NIO threads (the exporter's HTTP client; the admin plane's
# server, idle under this load).
monitor_ticks() {
    local t pattern='^sy-monitor$' sum=0
    [[ $COMPARE == tracing ]] && pattern='^(sy-trace|.*qos.*|NIO-.*)$'
    for t in /proc/"$1"/task/*; do
        [[ $(cat "$t/comm" 2>/dev/null) =~ $pattern ]] && sum=$((sum + $(awk '{print $14 + $15}' "$t/stat")))
    done
    echo "$sum"
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

run() {
    local kind=$1 p admin gateway=$bin
    [[ $kind == off ]] && gateway=$old_bin
    p=$(port)
    admin=$(port)
    "$gateway/switchyard" serve --config "$work/$kind.yaml" --model-repository "$work/$kind" --log-level warning \
        --listen "127.0.0.1:$p" --rest-listen "" --admin-listen "127.0.0.1:$admin" >"$work/$kind.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    h2load -n 20000 -c 1 -m 64 -d "$work/infer.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" >/dev/null   # warm-up
    # Steady state: the drift detector's reference (the first reference_rows rows it observes, a one-time cost
    # measured apart) complete before the measured calls; under drift.max_cpu_share it observes a share of calls.
    if [[ $COMPARE == monitor && $kind == on ]]; then
        for _ in $(seq 60); do
            curl -s "http://127.0.0.1:$admin/v1/drift/$MODEL?top=0" | grep -q collecting_reference || break
            h2load -n 20000 -c 1 -m 64 -d "$work/infer.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
                "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" >/dev/null
        done
    fi
    local before; before=$(cpu_ticks $pid)
    local monitor_before; monitor_before=$(monitor_ticks $pid)
    local out; out=$(h2load -n "$REQUESTS" -c 1 -m 64 -d "$work/infer.bin" -H 'content-type: application/grpc' \
        -H 'te: trailers' "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer")
    local after; after=$(cpu_ticks $pid)
    local monitor_after; monitor_after=$(monitor_ticks $pid)
    local dropped metrics observed
    metrics=$(curl -s "http://127.0.0.1:$admin/metrics")
    dropped=$(echo "$metrics" | awk '/^switchyard_(monitor|trace)_dropped_total/ {sum += $2} END {print sum + 0}')
    observed=$(echo "$metrics" | awk '/^switchyard_drift_observed_fraction/ {print $2; exit}')
    kill -TERM $pid; wait $pid || true
    local rps; rps=$(echo "$out" | awk '/^finished in/ {gsub(",","",$4); print $4}')
    local ok; ok=$(echo "$out" | awk '/^requests:/ {print $8}')
    local us; us=$(awk -v t=$((after - before)) -v hz="$clock_ticks" -v n="$REQUESTS" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    local monitor_us
    monitor_us=$(awk -v t=$((monitor_after - monitor_before)) -v hz="$clock_ticks" -v n="$REQUESTS" \
        'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "$kind $rps $us $ok ${dropped:-0} ${observed:--} $monitor_us"
}

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "compare: $COMPARE, model: $MODEL, $REQUESTS calls per run, $RUNS rounds"
results=()
for i in $(seq "$RUNS"); do
    for kind in off on; do
        r=$(run "$kind")
        echo "run $i: $kind $(echo "$r" | awk '{printf "%10.0f req/s  %6.2f µs CPU/req  (%s succeeded, %s dropped; monitoring or tracing threads %s µs/req, drift observing %s of calls)", $2, $3, $4, $5, $7, $6}')"
        results+=("$r")
    done
done
[[ $COMPARE == tracing ]] && echo "spans received by the OTLP receiver: $(tail -1 "$work/receiver.log")"
printf '%s\n' "${results[@]}" | COMPARE=$COMPARE python3 -c '
import os, statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {k: statistics.median(float(r[2]) for r in rows if r[0] == k) for k in ("off", "on")}
pairs = [float(b[2]) / float(a[2]) for a, b in zip(rows[0::2], rows[1::2])]
names = {"monitor": ("monitoring off", "capture 1%% + drift on"), "tracing": ("tracing off", "tracing on"),
         "binary": ("OLD_BIN", "this build")}[os.environ["COMPARE"]]
print("median server CPU per call: %s %.2f us, %s %.2f us: %+.1f%% (median per-round ratio %.3f)"
      % (names[0], med["off"], names[1], med["on"], (med["on"] / med["off"] - 1) * 100, statistics.median(pairs)))
monitor = statistics.median(float(r[6]) for r in rows if r[0] == "on")
if monitor > 0:
    what = {"monitor": "monitor thread (drift and capture)",
            "tracing": "tracing threads (ours and those of swift-otel)"}.get(os.environ["COMPARE"], "")
    print("%s: median %.2f us per call, %.1f%% of the off median" % (what, monitor, monitor / med["off"] * 100))
'
