#!/usr/bin/env bash
# Can switchyard-load drive at least twice what the gateway sustains on the demo model, on this machine?
#   loadtest/harness-capacity.sh [SECONDS=10]
# 1. The gateway's sustained rate G: closed loop, 256 in flight, batch-1 digits requests from samples.json.
# 2. The generator against the front end's echo floor (same request size, no model work): closed loop, then
#    open loop at 2 × G. The echo server is far cheaper per request than the gateway, so what limits these runs
#    is mostly the generator (and the shared CPUs).
# Prints each run's summary and the ratios. Release builds; scratch path from SWITCHYARD_SCRATCH (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
seconds=${1:-10}
scratch=${SWITCHYARD_SCRATCH:-.build}
for product in switchyard switchyard-echo-server switchyard-load; do
    swift build -c release --scratch-path "$scratch" --product $product >/dev/null
done
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
results=${RESULTS:-loadtest/results}
mkdir -p "$results"
field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

gp=$(port)
"$bin/switchyard" serve --model-repository models --listen "127.0.0.1:$gp" --rest-listen "" --log-level warning >/dev/null 2>&1 &
gpid=$!; pids+=($gpid); wait_port "$gp"
"$bin/switchyard-load" --target "127.0.0.1:$gp" --model digits --input models/digits/samples.json --concurrency 256 \
    --connections 8 --streams 64 --duration "$seconds" --warmup 2 --server-pid $gpid --quiet \
    --label "gateway c=256" --output "$results/capacity-gateway.json"
kill -TERM $gpid; wait $gpid 2>/dev/null || true
g=$(field "$results/capacity-gateway.json" 'r["summary"]["okThroughput"]')
body=$(python3 -c "
import json, struct
rows = json.load(open('models/digits/samples.json'))['pixels']
print(len(rows[0]) * 4 + 60)")   # about a batch-1 digits ModelInferRequest

ep=$(port)
"$bin/switchyard-echo-server" --listen "127.0.0.1:$ep" >/dev/null 2>&1 &
epid=$!; pids+=($epid); wait_port "$ep"
"$bin/switchyard-load" --target "127.0.0.1:$ep" --path /switchyard.bench.Echo/Echo --body-bytes "$body" \
    --concurrency 256 --connections 8 --streams 64 --duration "$seconds" --warmup 2 --server-pid $epid --quiet \
    --label "echo c=256" --output "$results/capacity-echo-closed.json"
rate=$(python3 -c "print(int(2 * $g))")
"$bin/switchyard-load" --target "127.0.0.1:$ep" --path /switchyard.bench.Echo/Echo --body-bytes "$body" \
    --rate "$rate" --threads 2 --connections 8 --streams 256 --duration "$seconds" --warmup 2 --server-pid $epid \
    --quiet --label "echo open @2G" --output "$results/capacity-echo-open.json"
python3 - "$results" <<'PY'
import json, sys
d = sys.argv[1]
g, c, o = (json.load(open(f"{d}/capacity-{n}.json")) for n in ("gateway", "echo-closed", "echo-open"))
G = g["summary"]["okThroughput"]
print()
print(f"gateway sustained (closed loop, 256 in flight): {G:10.0f} req/s   gateway CPU {g['serverCPU']['cpuPerRequestUs']:.1f} µs/req, "
      f"generator CPU {g['harness']['cpuPerRequestUs']:.1f} µs/req")
print(f"generator → echo, closed loop:                 {c['summary']['okThroughput']:10.0f} req/s   = {c['summary']['okThroughput'] / G:.2f} × gateway")
print(f"generator → echo, open loop at 2 × gateway:    {o['summary']['okThroughput']:10.0f} req/s of {o['summary']['offeredRate']:.0f} offered "
      f"(p99 scheduling lag {o['harness']['schedulingLagMs']['p99']:.2f} ms, dropped {o['harness']['dropped']}, "
      f"generator {o['harness']['cpuPerRequestUs']:.1f} µs CPU/req)")
if o["harness"]["bottleneck"]:
    print(f"  the generator reports it may have been the bottleneck: {o['harness']['note']}")
PY
