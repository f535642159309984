#!/usr/bin/env python3
"""Trains the bundled demo models and writes them into the model repository models/.

digits: scikit-learn's bundled handwritten digits (load_digits: 8x8 images, pixel values 0-16, 10 classes),
two versions of an MLPClassifier:
  models/digits/1/model.onnx   one hidden layer of 32
  models/digits/2/model.onnx   hidden layers 256-128

Each graph is written with onnx.helper from the learned weights:
  pixels FP32 [-1, 64] -> Gemm -> Relu -> ... -> Gemm -> logits FP32 [-1, 10]
                                                      -> Softmax -> probabilities FP32 [-1, 10]
Training scales pixels to 0-1 (x / 16); the first Gemm's weights carry that scale, so callers send raw 0-16
values. Also writes models/digits/samples.json (16 test images and their labels) and checks that onnxruntime
agrees with scikit-learn on the whole test split.

Deterministic (fixed seeds). Run: python3 scripts/train_demo_models.py
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models", "digits")
SCALE = 16.0

VERSIONS = {
    1: dict(hidden_layer_sizes=(32,), alpha=1e-3, max_iter=600),
    2: dict(hidden_layer_sizes=(256, 128), alpha=1e-3, max_iter=600),
}


def export(classifier, version):
    """The classifier as a Gemm/Relu chain with logits and probabilities outputs."""
    nodes, initializers = [], []
    current = "pixels"
    layers = len(classifier.coefs_)
    for index, (coef, bias) in enumerate(zip(classifier.coefs_, classifier.intercepts_)):
        weight = coef.astype(np.float64)
        if index == 0:
            weight = weight / SCALE  # raw 0-16 pixels in, the scaling training used folded into the weights
        # Stored as [out, in] with transB=1, the layout torch's nn.Linear exports.
        initializers.append(numpy_helper.from_array(weight.T.astype(np.float32), f"fc{index + 1}.weight"))
        initializers.append(numpy_helper.from_array(bias.astype(np.float32), f"fc{index + 1}.bias"))
        out = "logits" if index == layers - 1 else f"fc{index + 1}"
        nodes.append(helper.make_node("Gemm", [current, f"fc{index + 1}.weight", f"fc{index + 1}.bias"], [out],
                                      name=f"fc{index + 1}", transB=1))
        if index < layers - 1:
            nodes.append(helper.make_node("Relu", [out], [f"relu{index + 1}"], name=f"relu{index + 1}"))
            current = f"relu{index + 1}"
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1))
    graph = helper.make_graph(
        nodes, f"digits_v{version}",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchyard-demo",
                              model_version=version)
    model.ir_version = 8
    model.doc_string = (f"Handwritten digits (scikit-learn load_digits), MLP {classifier.hidden_layer_sizes}; "
                        "input: 64 raw pixel values 0-16, row-major 8x8")
    onnx.checker.check_model(model)
    return model


def main():
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    for version, params in VERSIONS.items():
        classifier = MLPClassifier(random_state=0, **params).fit(x_train / SCALE, y_train)
        model = export(classifier, version)
        directory = os.path.join(MODELS, str(version))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "model.onnx")
        onnx.save(model, path)

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        logits, probabilities = session.run(None, {"pixels": x_test})
        sklearn_probabilities = classifier.predict_proba(x_test / SCALE)
        sklearn_accuracy = float(np.mean(classifier.predict(x_test / SCALE) == y_test))
        onnx_accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
        max_difference = float(np.max(np.abs(probabilities - sklearn_probabilities)))
        agree = bool(np.all(np.argmax(probabilities, axis=1) == classifier.predict(x_test / SCALE)))
        print(f"digits v{version}: hidden {params['hidden_layer_sizes']}, {os.path.getsize(path)} bytes, "
              f"test accuracy {onnx_accuracy:.4f} (sklearn {sklearn_accuracy:.4f}), onnxruntime vs sklearn "
              f"max |Δp| {max_difference:.2e}, same predictions: {agree}")
        if not agree or max_difference > 1e-4:
            raise SystemExit(f"digits v{version}: onnxruntime disagrees with scikit-learn")

    samples = {"pixels": [[float(v) for v in row] for row in x_test[:16]],
               "labels": [int(v) for v in y_test[:16]]}
    with open(os.path.join(MODELS, "samples.json"), "w") as f:
        json.dump(samples, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {MODELS}/samples.json (16 test images)")


if __name__ == "__main__":
    main()
