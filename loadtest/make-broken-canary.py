"""Writes loadtest/models/digits/3/model.onnx: version 2 of the digits demo model with its input renamed from
'pixels' to 'image', the kind of export mistake a rollout's error-rate gate must catch. Needs the `onnx` package
(in the test environment: ~/.cache/switchyard/test-venv/bin/python loadtest/make-broken-canary.py)."""

import pathlib

import onnx

ROOT = pathlib.Path(__file__).resolve().parents[1]
model = onnx.load(str(ROOT / "models" / "digits" / "2" / "model.onnx"))
for graph_input in model.graph.input:
    if graph_input.name == "pixels":
        graph_input.name = "image"
for node in model.graph.node:
    node.input[:] = ["image" if name == "pixels" else name for name in node.input]
onnx.checker.check_model(model)
target = ROOT / "loadtest" / "models" / "digits" / "3" / "model.onnx"
target.parent.mkdir(parents=True, exist_ok=True)
onnx.save(model, str(target))
print(f"wrote {target}")
