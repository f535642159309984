#!/usr/bin/env bash
# Makes the virtual environment the peer servers run in (kept apart from the test venv so MLServer's pinned
# dependencies never disturb it): mlserver, onnxruntime, grpcio, numpy, onnx, tritonclient (for its protobufs).
#   loadtest/peers/install-peers.sh [VENV=~/.cache/switchyard/peers-venv]
set -euo pipefail
venv=${1:-${SWITCHYARD_PEERS_VENV:-$HOME/.cache/switchyard/peers-venv}}
# uvloop < 0.22: MLServer 1.7's inference workers call asyncio.get_event_loop() before any loop runs, which
# uvloop 0.22 turns into "There is no current event loop" and every worker dies at start.
# mlserver and tritonclient both register the inference.* protobuf symbols, so they are checked (and used) in
# separate processes.
if [ -x "$venv/bin/mlserver" ] && "$venv/bin/python" -c '
import importlib.metadata as m, mlserver, onnxruntime, onnx
assert tuple(int(x) for x in m.version("uvloop").split(".")[:2]) < (0, 22)' 2>/dev/null &&
    "$venv/bin/python" -c 'import tritonclient.grpc' 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet mlserver 'uvloop<0.22' onnxruntime onnx numpy 'tritonclient[grpc]'
"$venv/bin/python" -c 'import mlserver, onnxruntime; print("mlserver", mlserver.__version__, "onnxruntime", onnxruntime.__version__)'
