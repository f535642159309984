#!/usr/bin/env bash
# Server CPU per batch-1 ModelInfer on the demo model for two builds, measured alternately with the same client
# (h2load, one connection, 64 concurrent streams): the check that a change left the request path's cost alone.
#   loadtest/ab-server-cpu.sh OLD_BINARY NEW_BINARY [REQUESTS=200000] [RUNS=5]
# Build each tree in release first (swift build -c release --product switchyard). Prints per-run figures, the medians
# and the median of the per-round ratios new/old, and the host CPU. OLD_ARGS and NEW_ARGS (environment) add `serve`
# arguments to one side, to compare one build with itself under two configurations, e.g.
#   NEW_ARGS="--config tenants.yaml" loadtest/ab-server-cpu.sh "$bin" "$bin"
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
[ $# -ge 2 ] || { sed -n '2,6p' "$0"; exit 2; }
OLD=$1 NEW=$2
REQUESTS=${3:-200000}
RUNS=${4:-5}
make_work
"$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null

run() {
    local binary=$1 p admin extra=()
    read -r -a extra <<<"${2:-}"
    p=$(port)
    admin=$(port)
    # Builds with a REST listener get it turned off, so that both serve the same single port.
    if "$binary" serve --help 2>&1 | grep -q -- --rest-listen; then extra+=(--rest-listen ""); fi
    "$binary" serve --model-repository models --log-level warning --listen "127.0.0.1:$p" \
        --admin-listen "127.0.0.1:$admin" "${extra[@]}" >"$work/gateway.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    local measured
    measured=$(h2load_cpu $pid "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" "$work/infer.bin" \
        20000 "$REQUESTS")
    kill -TERM $pid; wait $pid || true
    echo "$measured" | awk '{print $2, $3}'
}

host_line
rows=()
for i in $(seq "$RUNS"); do
    old=$(run "$OLD" "${OLD_ARGS:-}")
    new=$(run "$NEW" "${NEW_ARGS:-}")
    echo "round $i: old $(echo "$old" | awk '{printf "%6.2f µs CPU/call (%s succeeded)", $1, $2}')   new $(echo "$new" | awk '{printf "%6.2f µs CPU/call (%s succeeded)", $1, $2}')"
    rows+=("${old%% *} ${new%% *}")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
old = statistics.median(r[0] for r in rows)
new = statistics.median(r[1] for r in rows)
ratio = statistics.median(r[1] / r[0] for r in rows)
print(f"median server CPU per call: old {old:.2f} us, new {new:.2f} us; median per-round ratio new/old {ratio:.3f}")
'
