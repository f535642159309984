#!/usr/bin/env bash
# Server CPU per request for batch-1 ModelInfer on the demo model, next to the front end's echo floor,
# measured in the same run with the same client (h2load, one connection, 64 concurrent streams).
#   loadtest/modelinfer-vs-echo.sh [REQUESTS=200000] [RUNS=3] [MODEL_VERSION=1]
# Prints per-run figures and the medians: requests/s, server CPU µs/request (utime+stime of the whole
# server process over the run, all threads), and the ratio to the echo floor.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
REQUESTS=${1:-200000}
RUNS=${2:-3}
VERSION=${3:-1}
bash scripts/bootstrap.sh --test >/dev/null
swift build -c release --product switchyard >/dev/null
swift build -c release --product switchyard-echo-server >/dev/null
bin=$(swift build -c release --show-bin-path)
make_work

"$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null
size=$(($(stat -c %s "$work/infer.bin") - 5))
"$venv/bin/python" loadtest/grpc_body.py raw "$size" "$work/echo.bin" >/dev/null
mkdir -p "$work/repo/digits"
cp -r models/digits/"$VERSION" "$work/repo/digits/1"
cp models/digits/config.yaml "$work/repo/digits/" 2>/dev/null || true

# run NAME PATH BODY -- server command...
run() {
    local name=$1 path=$2 body=$3; shift 4
    local p; p=$(port)
    "$@" --listen "127.0.0.1:$p" >"$work/$name.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    local measured; measured=$(h2load_cpu $pid "http://127.0.0.1:$p$path" "$body" 2000 "$REQUESTS")
    kill -TERM $pid; wait $pid || true
    echo "$name $measured"
}

results=()
for i in $(seq "$RUNS"); do
    e=$(run echo /switchyard.bench.Echo/Echo "$work/echo.bin" -- "$bin/switchyard-echo-server")
    m=$(run infer /inference.GRPCInferenceService/ModelInfer "$work/infer.bin" -- \
        "$bin/switchyard" serve --model-repository "$work/repo" --rest-listen "" --log-level warning)
    echo "run $i: echo  $(echo "$e" | awk '{printf "%10.0f req/s  %6.2f µs CPU/req  (%s succeeded)", $2, $3, $4}')"
    echo "run $i: infer $(echo "$m" | awk '{printf "%10.0f req/s  %6.2f µs CPU/req  (%s succeeded)", $2, $3, $4}')"
    results+=("$e" "$m")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
def median(kind, column):
    return statistics.median(float(r[column]) for r in rows if r[0] == kind)
echo_rps, echo_us = median("echo", 1), median("echo", 2)
infer_rps, infer_us = median("infer", 1), median("infer", 2)
print("median echo floor : %10.0f req/s  %6.2f us CPU/req" % (echo_rps, echo_us))
print("median ModelInfer : %10.0f req/s  %6.2f us CPU/req" % (infer_rps, infer_us))
print("ModelInfer / echo : %.2fx CPU per request" % (infer_us / echo_us))
'
