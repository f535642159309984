#!/usr/bin/env bash
# A skl2onnx StandardScaler + MLPClassifier pipeline against the same MLP exported bare, through the fused engine
# (Benchmarks/Engine/pipeline.py says how). Builds switchyard-engine-bench in release mode first.
#   Benchmarks/Engine/pipeline.sh [--rounds 5] [--rows 1,64]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/bootstrap.sh --test >/dev/null
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
swift build -c release --scratch-path .build-bench --product switchyard-engine-bench >/dev/null
"$venv/bin/python" Benchmarks/Engine/pipeline.py --bench .build-bench/release/switchyard-engine-bench "$@"
