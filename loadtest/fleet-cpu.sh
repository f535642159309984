#!/usr/bin/env bash
# Fleet mode's cost on the request path: server CPU per batch-1 ModelInfer of one binary serving the same canary
# route standalone (the anchor) and as a replica of a fleet (one etcd on loopback, started here), measured in
# alternating rounds by loadtest/ab-server-cpu.sh (h2load, one connection, 64 concurrent streams). The fleet replica
# watches the routes, keeps its presence lease and publishes its statistics every 250 ms while it is measured.
#   loadtest/fleet-cpu.sh BINARY [REQUESTS=200000] [RUNS=5]
# "old" in the output is the standalone replica, "new" the fleet replica; the goal is a median ratio ≤ 1.02.
# COUNT=instructions counts the server's instructions per call instead (loadtest/ab-instructions.sh, under valgrind;
# REQUESTS and RUNS are then N1 and N2): steady to ±0.05 % where CPU time moves by ±15 %.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,7p' "$0"; exit 2; }
BINARY=$1
source loadtest/lib.sh
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
dir=$(mktemp -d)
client=$(port) peer=$(port)
"$etcd_bin" --name bench --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "bench=http://127.0.0.1:$peer" \
    >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
trap 'kill $etcd_pid 2>/dev/null || true; wait $etcd_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
wait_port "$client"
routes='routes:
  - model: digits
    policy: canary
    versions: [{version: 1, weight: 50}, {version: 2, weight: 50}]'
printf '%s\n' "$routes" >"$dir/standalone.yaml"
printf '%s\ncluster:\n  replica_id: bench-replica\n  etcd: {endpoints: ["http://127.0.0.1:%s"], prefix: /switchyard/cpu}\n' \
    "$routes" "$client" >"$dir/fleet.yaml"
if [[ "${COUNT:-}" == instructions ]]; then
    OLD_ARGS="--config $dir/standalone.yaml" NEW_ARGS="--config $dir/fleet.yaml" \
        loadtest/ab-instructions.sh "$BINARY" "$BINARY" "${2:-200}" "${3:-2200}"
    exit
fi
OLD_ARGS="--config $dir/standalone.yaml" NEW_ARGS="--config $dir/fleet.yaml" \
    loadtest/ab-server-cpu.sh "$BINARY" "$BINARY" "${2:-200000}" "${3:-5}"
