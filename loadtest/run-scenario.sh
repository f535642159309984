#!/usr/bin/env bash
# Runs a load scenario against a gateway it starts with the bundled demo models, then writes the HTML report.
#   loadtest/run-scenario.sh SCENARIO [switchyard-load flags…]
#     SCENARIO: a name in loadtest/scenarios (steady, ramp-to-saturation, spike, closed-loop, canary-shift,
#               shadow-on-off, rollout, bad-canary-rollout) or a YAML path
#   The scenario's `gateway:` names the gateway's configuration file and `repository:` its model repository
#   (default models/); its `actions:` go to the gateway's admin API, started on a free loopback port.
#   env: SWITCHYARD_THREADS (gateway front-end loops, default 1), RESULTS (output dir, default loadtest/results)
# Prints the summary; leaves RESULTS/NAME-TIME.json and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
[ $# -ge 1 ] || { sed -n '2,6p' "$0"; exit 2; }
scenario=$1; shift
[ -f "$scenario" ] || scenario=loadtest/scenarios/$scenario.yaml
[ -f "$scenario" ] || { echo "run-scenario: no scenario '$scenario'; available: $(ls loadtest/scenarios | sed 's/.yaml//' | tr '\n' ' ')" >&2; exit 2; }
name=$(basename "$scenario" .yaml)
results=${RESULTS:-loadtest/results}
mkdir -p "$results"
scratch=${SWITCHYARD_SCRATCH:-.build}
buildlog=$(mktemp)
for product in switchyard switchyard-load; do
    swift build -c release --scratch-path "$scratch" --product $product >"$buildlog" 2>&1 || { cat "$buildlog"; exit 1; }
done
rm -f "$buildlog"
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

# Top-level `gateway:` and `repository:` keys of the scenario (plain scalars).
key() { sed -n "s/^$1:[[:space:]]*\([^#]*\).*/\1/p" "$scenario" | sed 's/[[:space:]]*$//' | head -1; }
repository=$(key repository); repository=${repository:-models}
gateway=$(key gateway)
config=()
if [ -n "$gateway" ]; then config=(--config "$gateway"); fi

port=$(port)
admin_port=$(port)
log=$(mktemp)
"$bin/switchyard" serve "${config[@]}" --model-repository "$repository" --listen "127.0.0.1:$port" --rest-listen "" \
    --admin-listen "127.0.0.1:$admin_port" --threads "${SWITCHYARD_THREADS:-1}" --log-level warning >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
wait_port "$port" || true
wait_port "$admin_port" || true

out="$results/$name-$(date -u +%Y%m%dT%H%M%SZ).json"
"$bin/switchyard-load" --scenario "$scenario" --target "127.0.0.1:$port" --server-pid "$server" \
    --admin "http://127.0.0.1:$admin_port" --output "$out" "$@"
python3 loadtest/report.py "$out" >/dev/null
echo "report: ${out%.json}.html"
