"""A model repository with a real failing canary, for the fallback tests and loadtest/fallback.py: model `labels` is
the digits demo model (version 2's weights) with a class-label head, ArgMax over the probabilities then Gather into a
constant label table. Version 1's table has all ten labels; version 2, the canary, was exported with a table of eight,
so the engine fails every call whose digit it reads as an 8 or a 9 ("index 8 is outside the table of 8 entries"), the
way a label map cut short at export breaks a model in production. Needs the `onnx` package."""

import json
import pathlib
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"


def label_model(labels):
    """The digits model (version 2) with an output `label` [batch] INT64 looked up in a table of `labels`."""
    model = onnx.load(str(DIGITS / "2" / "model.onnx"))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.asarray(labels, dtype=np.int64), "label_table"))
    graph.node.append(helper.make_node("ArgMax", ["probabilities"], ["class_index"], axis=1, keepdims=0))
    graph.node.append(helper.make_node("Gather", ["label_table", "class_index"], ["label"], axis=0))
    graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
    onnx.checker.check_model(model)
    return model


def write_repository(root, slo_ms=None):
    """Writes `root/labels/{1,2}/model.onnx` and config.yaml; returns the repository path."""
    repository = pathlib.Path(root)
    for version, labels in (("1", range(10)), ("2", range(8))):
        (repository / "labels" / version).mkdir(parents=True, exist_ok=True)
        onnx.save(label_model(list(labels)), str(repository / "labels" / version / "model.onnx"))
    config = (DIGITS / "config.yaml").read_text()
    if slo_ms is not None:
        config = "\n".join(f"slo_ms: {slo_ms}" if line.startswith("slo_ms:") else line for line in config.splitlines())
    (repository / "labels" / "config.yaml").write_text(config + "\n")
    shutil.copy(DIGITS / "samples.json", repository / "labels" / "samples.json")
    return repository


def samples():
    """The demo samples: pixels [16, 64] FP32 and their true digits."""
    data = json.loads((DIGITS / "samples.json").read_text())
    return np.asarray(data["pixels"], dtype=np.float32), list(data["labels"])
