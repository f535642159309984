#!/usr/bin/env bash
# Server CPU per ModelInfer for a 64×784 FP32 input (200 KB) sent over the socket vs handed over in system shared
# memory (input and output regions registered once), on a one-Gemm 784→10 model so that the transport, not the
# arithmetic, is what differs. One gateway; the two bodies are sent alternately by the same client (h2load, one
# connection, 16 concurrent streams).
#   loadtest/shm.sh [REQUESTS=20000] [RUNS=5]
# Prints per-run figures, the medians and their ratio, and the host CPU. SWITCHYARD_BIN=path skips the release
# build and measures that binary instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
REQUESTS=${1:-20000}
RUNS=${2:-5}
bin=$(release_bin)
work=$(mktemp -d)
key="/switchyard-shm-bench-$$"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" "/dev/shm/${key#/}"' EXIT

"$venv/bin/python" loadtest/shm_setup.py model "$work/models"
"$venv/bin/python" loadtest/shm_setup.py bodies "$work" "$key"

p=$(port)
"$bin/switchyard" serve --model-repository "$work/models" --log-level warning --listen "127.0.0.1:$p" \
    --admin-listen "127.0.0.1:$(port)" --rest-listen "" >"$work/gateway.log" 2>&1 &
pid=$!
wait_port "$p"
"$venv/bin/python" loadtest/shm_setup.py register "127.0.0.1:$p" "$key"

load() {
    h2load -n "$1" -c 1 -m 16 -d "$work/$2.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer"
}

measure() {
    local kind=$1 before after out
    before=$(cpu_ticks $pid)
    out=$(load "$REQUESTS" "$kind")
    after=$(cpu_ticks $pid)
    local rps ok us
    rps=$(echo "$out" | awk '/^finished in/ {gsub(",","",$4); print $4}')
    ok=$(echo "$out" | awk '/^requests:/ {print $8}')
    us=$(awk -v t=$((after - before)) -v hz="$clock_ticks" -v n="$REQUESTS" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "$kind $rps $us $ok"
}

for kind in socket shm; do load 2000 "$kind" >/dev/null; done   # warm-up
# Every call must succeed: an h2load "succeeded" counts HTTP 200s, so check grpc-status through one grpcio call.
"$venv/bin/python" - "127.0.0.1:$p" "$work/shm.bin" <<'PY'
import sys, grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
body = open(sys.argv[2], "rb").read()[5:]
with grpc.insecure_channel(sys.argv[1]) as channel:
    response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(service_pb2.ModelInferRequest.FromString(body))
    assert not any(response.raw_output_contents) and response.outputs[0].parameters["shared_memory_region"].string_param
PY

host_line
results=()
for i in $(seq "$RUNS"); do
    for kind in socket shm; do
        r=$(measure "$kind")
        echo "run $i: $(echo "$r" | awk '{printf "%-6s %8.0f req/s  %7.2f µs CPU/call  (%s succeeded)", $1, $2, $3, $4}')"
        results+=("$r")
    done
done
kill -TERM $pid; wait $pid || true
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {k: statistics.median(float(r[2]) for r in rows if r[0] == k) for k in ("socket", "shm")}
print("median server CPU per call, 64x784 FP32 input: socket %.2f us, system shared memory %.2f us: %+.1f%%"
      % (med["socket"], med["shm"], (med["shm"] / med["socket"] - 1) * 100))
'
