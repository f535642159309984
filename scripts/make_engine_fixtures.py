#!/usr/bin/env python3
"""Builds the ONNX fixtures of the engine tests (Tests/SwitchyardEngineTests/Fixtures).

Writes small FP32 MLP graphs (onnx.helper and skl2onnx), random inputs and the outputs onnxruntime computes
for them, plus graphs the importer must refuse, into:

  Fixtures/<case>.onnx     the models
  Fixtures/cases.json      {"cases": [{name, model, ops, inputs: [{name, shape, data}], outputs: [...]}],
                            "refusals": [{name, model, contains: [substrings the error must name]}]}

Graphs that mimic torch.onnx exports (torch itself is not installed) use the node patterns torch emits:
nn.Linear on 2-D input is Gemm(transB=1); on higher-rank input MatMul with the transposed weight + Add;
nn.Flatten is Flatten(axis=1); nn.GELU is the Erf form before opset 20 (Div, Erf, Add, Mul, Mul with
Constant nodes); nn.Softmax(dim=-1) is Softmax(axis=-1); a traced batch of 1 gives a fixed leading dim 1.

Deterministic: fixed seeds. Run: python3 scripts/make_engine_fixtures.py
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "SwitchyardEngineTests", "Fixtures")
rng = np.random.default_rng(20261123)


def weight(name, shape, raw=True, scale=None):
    fan_in = shape[0] if len(shape) > 1 else 1
    scale = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
    data = (rng.standard_normal(shape) * scale).astype(np.float32)
    if raw:
        return numpy_helper.from_array(data, name)
    return helper.make_tensor(name, TensorProto.FLOAT, list(shape), data.flatten().tolist(), raw=False)


def const_node(name, value):
    array = np.asarray(value, dtype=np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_value"), name=name)


def tensor_info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, initializers, opset=17, name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="switchyard-fixtures")
    m.ir_version = 8 if opset < 21 else 10
    return m


def erf_gelu(x, out, prefix):
    """torch.onnx's GELU before opset 20: x * 0.5 * (1 + erf(x / sqrt(2)))"""
    return [
        const_node(prefix + "_sqrt2", 1.4142135381698608),
        helper.make_node("Div", [x, prefix + "_sqrt2"], [prefix + "_div"], name=prefix + "_Div"),
        helper.make_node("Erf", [prefix + "_div"], [prefix + "_erf"], name=prefix + "_Erf"),
        const_node(prefix + "_one", 1.0),
        helper.make_node("Add", [prefix + "_erf", prefix + "_one"], [prefix + "_add"], name=prefix + "_Add"),
        helper.make_node("Mul", [x, prefix + "_add"], [prefix + "_mul"], name=prefix + "_Mul"),
        const_node(prefix + "_half", 0.5),
        helper.make_node("Mul", [prefix + "_mul", prefix + "_half"], [out], name=prefix + "_Mul_1"),
    ]


cases = []
refusals = []
models_written = []


def save(name, m, check=True):
    if check:
        onnx.checker.check_model(m)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(m, path)
    models_written.append(path)
    return name + ".onnx"


def add_case(name, m, rows, input_shapes=None):
    file = save(name, m)
    session = ort.InferenceSession(os.path.join(OUT, file), providers=["CPUExecutionProvider"])
    feeds = {}
    inputs = []
    for info in session.get_inputs():
        row_shape = [d for d in info.shape[1:]]
        if input_shapes and info.name in input_shapes:
            row_shape = input_shapes[info.name]
        batch = rows
        data = rng.uniform(-2.0, 2.0, size=[batch] + row_shape).astype(np.float32)
        feeds[info.name] = data
        inputs.append({"name": info.name, "shape": [batch] + row_shape, "data": [float(v) for v in data.flatten()]})
    if any(info.shape[0] == 1 for info in session.get_inputs()):
        # Traced with a fixed batch of 1: onnxruntime runs one row at a time; the importer serves any batch.
        per_row = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(rows)]
        results = [np.concatenate([r[j] for r in per_row]) for j in range(len(per_row[0]))]
    else:
        results = session.run(None, feeds)
    outputs = []
    for info, value in zip(session.get_outputs(), results):
        value = np.asarray(value, dtype=np.float32)
        outputs.append({"name": info.name, "shape": list(value.shape), "data": [float(v) for v in value.flatten()]})
    cases.append({"name": name, "model": file, "ops": [n.op_type for n in m.graph.node], "inputs": inputs,
                  "outputs": outputs})


def add_refusal(name, m_or_bytes, contains, check=False):
    if isinstance(m_or_bytes, bytes):
        path = os.path.join(OUT, name + ".onnx")
        with open(path, "wb") as f:
            f.write(m_or_bytes)
        models_written.append(path)
        file = name + ".onnx"
    else:
        file = save(name, m_or_bytes, check=check)
    refusals.append({"name": name, "model": file, "contains": contains})


def build_helper_cases():
    # Gemm, transB=1 (torch nn.Linear) and transB=0 with alpha/beta and a [1, N] C; float_data and raw_data.
    add_case("gemm_transb", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
         helper.make_node("Relu", ["h"], ["r"], name="relu1"),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=0, alpha=0.7, beta=1.3)],
        [tensor_info("x", ["batch", 13])], [tensor_info("y", ["batch", 5])],
        [weight("w1", [7, 13]), weight("b1", [7], raw=False), weight("w2", [7, 5], raw=False),
         weight("b2", [1, 5])]), rows=9)
    # Gemm with a scalar C, no C, and transB=1 + alpha.
    add_case("gemm_scalar_c", model(
        [helper.make_node("Gemm", ["x", "w1", "c"], ["h"], name="fc1", beta=0.5),
         helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1, alpha=2.0)],
        [tensor_info("x", [None, 6])], [tensor_info("y", [None, 3])],
        [weight("w1", [6, 11]), helper.make_tensor("c", TensorProto.FLOAT, [], [0.25]), weight("w2", [3, 11])],
        opset=11), rows=4)
    # MatMul + Add (the skl2onnx / torch higher-rank pattern), Sigmoid, Tanh; batch of 1.
    add_case("matmul_add", model(
        [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
         helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
         helper.make_node("Sigmoid", ["a1"], ["s1"], name="sig"),
         helper.make_node("MatMul", ["s1", "w2"], ["m2"], name="mm2"),
         helper.make_node("Add", ["b2", "m2"], ["a2"], name="add2"),
         helper.make_node("Tanh", ["a2"], ["y"], name="tanh")],
        [tensor_info("x", ["N", 17])], [tensor_info("y", ["N", 9])],
        [weight("w1", [17, 21]), weight("b1", [21]), weight("w2", [21, 9]), weight("b2", [1, 9])]), rows=1)
    # Each activation on its own, 2 hidden layers so values reach both signs.
    for act, attrs, opset in [("LeakyRelu", {"alpha": 0.2}, 16), ("Sigmoid", {}, 13), ("Tanh", {}, 13),
                              ("Relu", {}, 12), ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
                              ("Erf", {}, 13)]:
        suffix = act.lower() + ("_tanh" if attrs.get("approximate") == "tanh" else "")
        add_case("act_" + suffix, model(
            [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node(act, ["h"], ["a"], name="act", **attrs),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2", transB=1)],
            [tensor_info("x", ["batch", 10])], [tensor_info("y", ["batch", 6])],
            [weight("w1", [12, 10], scale=1.0), weight("b1", [12]), weight("w2", [6, 12]), weight("b2", [6])],
            opset=opset), rows=8)
    # torch-style GELU in the Erf form, Softmax opset 11 (coerce to 2-D, axis 1) and opset 13 (axis -1).
    add_case("erf_gelu_softmax11", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1)]
        + erf_gelu("h", "g", "gelu")
        + [helper.make_node("Gemm", ["g", "w2", "b2"], ["logits"], name="fc2", transB=1),
           helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)],
        [tensor_info("x", ["batch", 8])], [tensor_info("logits", ["batch", 4]), tensor_info("probabilities", ["batch", 4])],
        [weight("w1", [16, 8], scale=1.0), weight("b1", [16]), weight("w2", [4, 16], scale=2.0), weight("b2", [4])],
        opset=11), rows=6)
    add_case("softmax13", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
         helper.make_node("Softmax", ["h"], ["y"], name="softmax", axis=-1)],
        [tensor_info("x", ["batch", 5])], [tensor_info("y", ["batch", 7])],
        [weight("w1", [7, 5], scale=3.0), weight("b1", [7])], opset=13), rows=5)
    # torch-style export traced with one example: fixed batch 1, 4-D input, Flatten, Linear (Gemm transB=1), GELU
    # (opset 20 Gelu op), Softmax(dim=-1).
    add_case("torch_flatten_linear", model(
        [helper.make_node("Flatten", ["input"], ["flat"], name="/flatten/Flatten", axis=1),
         helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], name="/fc1/Gemm", alpha=1.0,
                          beta=1.0, transB=1),
         helper.make_node("Gelu", ["h"], ["g"], name="/act/Gelu"),
         helper.make_node("Gemm", ["g", "fc2.weight", "fc2.bias"], ["logits"], name="/fc2/Gemm", transB=1),
         helper.make_node("Softmax", ["logits"], ["output"], name="/softmax/Softmax", axis=-1)],
        [tensor_info("input", [1, 3, 4, 4])], [tensor_info("output", [1, 10])],
        [weight("fc1.weight", [20, 48]), weight("fc1.bias", [20]), weight("fc2.weight", [10, 20]),
         weight("fc2.bias", [10])], opset=20), rows=7, input_shapes={"input": [3, 4, 4]})
    # torch nn.Linear on 3-D input: MatMul with the transposed weight + Add, then Reshape [0, -1] / [-1, K],
    # Identity, a residual Add of two activations and a Mul of two activations.
    add_case("torch_matmul3d_reshape", model(
        [helper.make_node("MatMul", ["x", "w1t"], ["m"], name="/l1/MatMul"),
         helper.make_node("Add", ["l1.bias", "m"], ["h"], name="/l1/Add"),
         helper.make_node("Relu", ["h"], ["r"], name="/relu/Relu"),
         helper.make_node("Reshape", ["r", "shape0"], ["flat"], name="/Reshape"),
         helper.make_node("Identity", ["flat"], ["flat2"], name="/Identity"),
         helper.make_node("Gemm", ["flat2", "w2", "b2"], ["z"], name="/l2/Gemm", transB=1),
         helper.make_node("Tanh", ["z"], ["t"], name="/tanh"),
         helper.make_node("Add", ["z", "t"], ["res"], name="/residual/Add"),
         helper.make_node("Mul", ["res", "t"], ["prod"], name="/gate/Mul"),
         helper.make_node("Sub", ["prod", "sub_c"], ["sub"], name="/Sub"),
         helper.make_node("Reshape", ["sub", "shape1"], ["y"], name="/Reshape_1")],
        [tensor_info("x", ["batch", 4, 6])], [tensor_info("y", ["batch", 9])],
        [weight("w1t", [6, 5]), weight("l1.bias", [5]),
         numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape0"),
         weight("w2", [9, 20]), weight("b2", [9]), weight("sub_c", [9]),
         numpy_helper.from_array(np.array([-1, 9], dtype=np.int64), "shape1")]), rows=5)
    # An input that is also an initializer (a default) is not a model input.
    add_case("initializer_input", model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)],
        [tensor_info("x", ["batch", 3]), tensor_info("w", [2, 3]), tensor_info("b", [2])],
        [tensor_info("y", ["batch", 2])], [weight("w", [2, 3]), weight("b", [2])]), rows=3)


def build_sklearn_cases():
    import onnx.utils
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    data_rng = np.random.RandomState(7)
    X = data_rng.rand(200, 12).astype(np.float32)
    y_reg = X @ data_rng.rand(12) + np.sin(X[:, 0] * 3)
    reg = MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0).fit(X, y_reg)
    m = to_onnx(reg, X[:1], target_opset=17)
    add_case("sklearn_mlp_regressor", m, rows=6)
    print("skl2onnx MLPRegressor ops:", [n.op_type for n in m.graph.node])

    y_cls = (X[:, 0] * 3).astype(int) + (X[:, 1] > 0.5)
    cls = MLPClassifier(hidden_layer_sizes=(10,), max_iter=400, random_state=0).fit(X, y_cls)
    full = to_onnx(cls, X[:1], target_opset=17, options={"zipmap": False})
    print("skl2onnx MLPClassifier ops (zipmap=False):", [n.op_type for n in full.graph.node])
    add_case("sklearn_mlp_classifier_full", full, rows=6)
    zipmap = to_onnx(cls, X[:1], target_opset=17)
    node = [n for n in zipmap.graph.node if n.op_type == "ZipMap"][0]
    add_refusal("refuse_zipmap", zipmap,
                [f"'{node.name}'", "op 'ai.onnx.ml.ZipMap' is not supported", "options={'zipmap': False}"],
                check=True)
    # The probabilities alone: the same graph with the label branch cut off.
    path = os.path.join(OUT, "_full.onnx")
    onnx.save(full, path)
    pruned_path = os.path.join(OUT, "_pruned.onnx")
    onnx.utils.extract_model(path, pruned_path, [full.graph.input[0].name], ["probabilities"])
    pruned = onnx.load(pruned_path)
    os.remove(path)
    os.remove(pruned_path)
    print("probabilities-only classifier ops:", [n.op_type for n in pruned.graph.node])
    add_case("sklearn_mlp_classifier_probabilities", pruned, rows=6)


def build_exporter_pattern_cases():
    """The operators torch.onnx and skl2onnx write around dense layers, each in a small graph."""
    def const(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    channels = 6
    bn = [weight(n, [channels], scale=0.5) for n in ("bn_s", "bn_b", "bn_m")]
    bn.append(numpy_helper.from_array(rng.uniform(0.5, 2.0, channels).astype(np.float32), "bn_v"))
    add_case("batchnorm_layernorm_logsoftmax", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
         helper.make_node("BatchNormalization", ["h1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], epsilon=1e-3),
         helper.make_node("Relu", ["n1"], ["a1"]),
         helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], transB=1),
         helper.make_node("LayerNormalization", ["h2", "ln_s", "ln_b"], ["n2"], axis=-1, epsilon=1e-5),
         helper.make_node("Gemm", ["n2", "w3", "b3"], ["h3"], transB=1),
         helper.make_node("LogSoftmax", ["h3"], ["y"], axis=-1)],
        [tensor_info("x", ["batch", 5])], [tensor_info("y", ["batch", 4])],
        [weight("w1", [channels, 5]), weight("b1", [channels]), *bn, weight("w2", [7, channels]), weight("b2", [7]),
         weight("ln_s", [7]), weight("ln_b", [7]), weight("w3", [4, 7]), weight("b3", [4])]), rows=9)

    add_case("layernorm_decomposed_view", model(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
         helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
         helper.make_node("Reshape", ["x", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w1"], ["m1"]),
         helper.make_node("Add", ["m1", "b1"], ["h"]),
         helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1]),
         helper.make_node("Sub", ["h", "mean"], ["centered"]),
         helper.make_node("Pow", ["centered", "two"], ["sq"]),
         helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
         helper.make_node("Add", ["var", "eps"], ["var_eps"]),
         helper.make_node("Sqrt", ["var_eps"], ["std"]),
         helper.make_node("Div", ["centered", "std"], ["normed"]),
         helper.make_node("Mul", ["normed", "gamma"], ["scaled"]),
         helper.make_node("Add", ["scaled", "beta"], ["shifted"]),
         helper.make_node("Dropout", ["shifted"], ["dropped"]),
         helper.make_node("Sigmoid", ["dropped"], ["sig"]),
         helper.make_node("Mul", ["dropped", "sig"], ["silu"]),
         helper.make_node("Gemm", ["silu", "w2", "b2"], ["y"], transB=1)],
        [tensor_info("x", ["batch", 2, 6])], [tensor_info("y", ["batch", 3])],
        [const("zero", 0), const("axes0", [0]), const("minus1", [-1]), weight("w1", [12, 8]), weight("b1", [8]),
         numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
         numpy_helper.from_array(np.array(1e-5, dtype=np.float32), "eps"),
         weight("gamma", [8]), weight("beta", [8]), weight("w2", [3, 8]), weight("b2", [3])], opset=13), rows=7)

    add_case("activation_zoo", model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
         helper.make_node("Clip", ["h1", "lo", "hi"], ["c1"]),
         helper.make_node("HardSwish", ["c1"], ["a1"]),
         helper.make_node("HardSigmoid", ["a1"], ["a2"], alpha=0.16666667),
         helper.make_node("Elu", ["a2"], ["a3"]),
         helper.make_node("Selu", ["a3"], ["a4"]),
         helper.make_node("PRelu", ["a4", "slope"], ["a5"]),
         helper.make_node("Gemm", ["a5", "w2", "b2"], ["h2"], transB=1),
         helper.make_node("Softplus", ["h2"], ["sp"]),
         helper.make_node("Greater", ["h2", "threshold"], ["big"]),
         helper.make_node("Where", ["big", "h2", "sp"], ["a6"]),
         helper.make_node("Mish", ["a6"], ["a7"]),
         helper.make_node("Abs", ["a7"], ["a8"]),
         helper.make_node("ReduceSum", ["a8", "axes"], ["total"], keepdims=1),
         helper.make_node("Neg", ["total"], ["neg"]),
         helper.make_node("Exp", ["neg"], ["e"]),
         helper.make_node("Add", ["a7", "e"], ["y"])],
        [tensor_info("x", ["batch", 5])], [tensor_info("y", ["batch", 6])],
        [weight("w1", [6, 5]), weight("b1", [6]),
         numpy_helper.from_array(np.array(-1.0, dtype=np.float32), "lo"),
         numpy_helper.from_array(np.array(1.5, dtype=np.float32), "hi"),
         weight("slope", [6]), weight("w2", [6, 6]), weight("b2", [6]),
         numpy_helper.from_array(np.array(0.5, dtype=np.float32), "threshold"), const("axes", [-1])], opset=18), rows=8)

    add_case("two_inputs_concat_argmax", model(
        [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
         helper.make_node("Gemm", ["ab", "w1", "b1"], ["h"], transB=1),
         helper.make_node("Softmax", ["h"], ["p"], axis=1),
         helper.make_node("ArgMax", ["p"], ["label"], axis=1, keepdims=0)],
        [tensor_info("a", ["batch", 3]), tensor_info("b", ["batch", 4])],
        [tensor_info("p", ["batch", 5]), tensor_info("label", ["batch"], TensorProto.INT64)],
        [weight("w1", [5, 7]), weight("b1", [5])], opset=17), rows=6)


def build_sklearn_pipeline_cases():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    data_rng = np.random.RandomState(11)
    X = data_rng.randn(200, 8).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(10,), max_iter=300, random_state=0))
    add_case("sklearn_scaler_mlp_classifier", to_onnx(pipe.fit(X, y), X[:1], options={"zipmap": False}), rows=6)
    logreg = LogisticRegression().fit(X, y)
    add_case("sklearn_logistic_regression", to_onnx(logreg, X[:1], options={"zipmap": False}), rows=6)
    linear = make_pipeline(Normalizer(), LinearRegression()).fit(X, X[:, 0] * 2 - X[:, 3])
    add_case("sklearn_normalizer_linear", to_onnx(linear, X[:1]), rows=6)


def build_refusals():
    conv = model(
        [helper.make_node("Conv", ["x", "k"], ["c"], name="Conv_0", kernel_shape=[3, 3]),
         helper.make_node("Flatten", ["c"], ["y"], name="Flatten_1")],
        [tensor_info("x", ["batch", 1, 8, 8])], [tensor_info("y", ["batch", 36])], [weight("k", [1, 1, 3, 3])])
    add_refusal("refuse_conv", conv, ["node 0 'Conv_0'", "op 'Conv' is not supported", "supported: Gemm, MatMul"],
                check=True)
    string_input = model([helper.make_node("Identity", ["x"], ["y"], name="id")],
                         [tensor_info("x", ["batch", 4], TensorProto.STRING)],
                         [tensor_info("y", ["batch", 4], TensorProto.STRING)], [])
    add_refusal("refuse_string_input", string_input, ["input 'x'", "STRING", "expected a numeric type"], check=True)
    old = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor_info("x", ["batch", 4])],
                [tensor_info("y", ["batch", 4])], [], opset=6)
    add_refusal("refuse_opset6", old, ["opset 6", "7–23"])
    lstm = model([helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=2)],
                 [tensor_info("x", [3, "batch", 4])], [tensor_info("y", [3, 1, "batch", 2])],
                 [weight("w", [1, 8, 4]), weight("r", [1, 8, 2])])
    add_refusal("refuse_lstm", lstm, ["node 0 'lstm'", "op 'LSTM' is not supported", "recurrent"])
    good = model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], [tensor_info("x", ["batch", 4])],
                 [tensor_info("y", ["batch", 3])], [weight("w", [4, 3])]).SerializeToString()
    add_refusal("refuse_truncated", good[: len(good) - 20], ["not an ONNX model"])
    add_refusal("refuse_garbage", bytes(rng.integers(0, 256, 300, dtype=np.uint8)), ["not an ONNX model"])
    add_refusal("refuse_gelu_opset17", model(
        [helper.make_node("Gelu", ["x"], ["y"], name="gelu")], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", ["batch", 4])], []), ["node 0 'gelu'", "Gelu needs opset 20"])
    add_refusal("refuse_transa", model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transA=1)], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", [None, 3])], [weight("w", [4, 3])]), ["node 0 'fc'", "transA"])
    add_refusal("refuse_missing_initializer", model(
        [helper.make_node("MatMul", ["x", "w_missing"], ["y"], name="mm")], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", ["batch", 3])], []), ["node 0 'mm'", "'w_missing' is not defined"])
    add_refusal("refuse_bad_weight_shape", model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", ["batch", 3])], [weight("w", [4, 3])]), ["node 0 'fc'", "expected K=4"])
    add_refusal("refuse_reshape_batch", model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", [1, None])], [numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "s")]),
        ["node 0 'rs'", "does not keep the batch dimension"])
    for name, dims, words in [("refuse_huge_dims", [1 << 20, 1 << 20], "elements"),
                              ("refuse_overflow_dims", [1 << 40, 1 << 40], "out of range")]:
        huge = onnx.TensorProto()
        huge.name = "w"
        huge.data_type = TensorProto.FLOAT
        huge.dims.extend(dims)
        add_refusal(name, model(
            [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [tensor_info("x", ["batch", 4])],
            [tensor_info("y", ["batch", 3])], [huge]), ["initializer 'w'", words])
    short = onnx.TensorProto()
    short.name = "w"
    short.data_type = TensorProto.FLOAT
    short.dims.extend([4, 3])
    short.raw_data = b"\0" * 40
    add_refusal("refuse_short_raw_data", model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", ["batch", 3])], [short]), ["initializer 'w'", "40 bytes", "expected 48"])
    add_refusal("refuse_string_weight", model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [tensor_info("x", ["batch", 4])],
        [tensor_info("y", ["batch", 3])],
        [helper.make_tensor("w", TensorProto.STRING, [4, 3], [b"a"] * 12)]), ["node 0 'mm'", "STRING"])


def main():
    os.makedirs(OUT, exist_ok=True)
    build_helper_cases()
    build_sklearn_cases()
    build_exporter_pattern_cases()
    build_sklearn_pipeline_cases()
    build_refusals()
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"cases": cases, "refusals": refusals}, f, separators=(",", ":"))
    total = sum(os.path.getsize(p) for p in models_written) + os.path.getsize(os.path.join(OUT, "cases.json"))
    print(f"{len(cases)} cases, {len(refusals)} refusals, {total} bytes in {OUT}")
    if total > 2 << 20:
        sys.exit("fixtures exceed 2 MB")


if __name__ == "__main__":
    main()
