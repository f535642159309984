#!/usr/bin/env python3
"""Writes the 784→1024→1024→10 MLP (Gemm+ReLU, Softmax-free logits) used by the peer comparison, with fixed-seed
random weights, and checks it with onnxruntime.

  make_mlp.py OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(784)
    sizes = [784, 1024, 1024, 10]
    nodes, inits = [], []
    previous = "input"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        gemm_out = "logits" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [gemm_out], name=f"gemm{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{i}"], name=f"relu{i}"))
            previous = f"r{i}"
    graph = helper.make_graph(
        nodes, "mlp784",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchyard-loadtest")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)
    import onnxruntime as ort
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    x = rng.random((2, 784), dtype=np.float32)
    (y,) = session.run(None, {"input": x})
    assert y.shape == (2, 10), y.shape
    print(f"{out}: 784→1024→1024→10 MLP, {sum(i.raw_data.__len__() for i in inits) / 1e6:.1f} MB of weights")


if __name__ == "__main__":
    main()
