#!/usr/bin/env bash
# Fleet mode: acknowledgment of a weight change → in force on every replica (p50/p99 over N changes), with one
# etcd and R replicas on loopback under steady inference load. Needs etcd (scripts/bootstrap.sh --test).
#   loadtest/fleet.sh [--changes 100] [--replicas 3]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$HOME/.cache/switchyard/test-venv/bin/python}
export SWITCHYARD_BIN=${SWITCHYARD_BIN:-$(swift build --show-bin-path)/switchyard}
exec "$python" loadtest/fleet_propagation.py "$@"
