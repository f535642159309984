#!/usr/bin/env bash
# Makes the virtual environment the peer servers run in (kept apart from the test venv so MLServer's pinned
# dependencies never disturb it): mlserver, onnxruntime, grpcio, numpy, onnx, tritonclient (for its protobufs).
#   loadtest/peers/install-peers.sh [VENV=~/.cache/switchyard/peers-venv]
set -euo pipefail
venv=${1:-${SWITCHYARD_PEERS_VENV:-$HOME/.cache/switchyard/peers-venv}}
if [ -x "$venv/bin/mlserver" ] && "$venv/bin/python" -c 'import mlserver, onnxruntime, onnx, tritonclient.grpc' 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet mlserver onnxruntime onnx numpy 'tritonclient[grpc]'
"$venv/bin/python" -c 'import mlserver, onnxruntime; print("mlserver", mlserver.__version__, "onnxruntime", onnxruntime.__version__)'
