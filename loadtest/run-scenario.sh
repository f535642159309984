#!/usr/bin/env bash
# Runs a load scenario against a gateway it starts with the bundled demo models, then writes the HTML report.
#   loadtest/run-scenario.sh SCENARIO [switchyard-load flags…]
#     SCENARIO: a name in loadtest/scenarios (steady, ramp-to-saturation, spike, closed-loop) or a YAML path
#   env: SWITCHYARD_THREADS (gateway front-end loops, default 1), RESULTS (output dir, default loadtest/results)
# Prints the summary; leaves RESULTS/NAME-TIME.json and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,6p' "$0"; exit 2; }
scenario=$1; shift
[ -f "$scenario" ] || scenario=loadtest/scenarios/$scenario.yaml
[ -f "$scenario" ] || { echo "run-scenario: no scenario '$scenario'; available: $(ls loadtest/scenarios | sed 's/.yaml//' | tr '\n' ' ')" >&2; exit 2; }
name=$(basename "$scenario" .yaml)
results=${RESULTS:-loadtest/results}
mkdir -p "$results"
scratch=${SWITCHYARD_SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product switchyard >/dev/null
swift build -c release --scratch-path "$scratch" --product switchyard-load >/dev/null
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
"$bin/switchyard" serve --model-repository models --listen "127.0.0.1:$port" --threads "${SWITCHYARD_THREADS:-1}" \
    --log-level warning >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done

out="$results/$name-$(date -u +%Y%m%dT%H%M%SZ).json"
"$bin/switchyard-load" --scenario "$scenario" --target "127.0.0.1:$port" --server-pid "$server" --output "$out" "$@"
python3 loadtest/report.py "$out" >/dev/null
echo "report: ${out%.json}.html"
