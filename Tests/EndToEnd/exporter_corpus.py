"""A corpus of models as real exporters write them, for judging the ONNX importer end to end.

Each case builds one ONNX model the way a tool users actually run would write it:

- scikit-learn pipelines converted by skl2onnx with its default options (classifiers only with
  ``options={'zipmap': False}``) and its default target opset;
- onnx.helper graphs that reproduce torch.onnx's legacy (TorchScript) exporter op for op, opsets 11-17,
  with its node names (``/fc1/Gemm``), Constant nodes and shape arithmetic (``x.view(x.size(0), -1)``);
- onnx.helper graphs that reproduce the torch dynamo exporter (opsets 18-20): weights as external data in
  ``model.onnx.data``, LayerNormalization, Gelu, symbolic batch dimension ``s0``;
- datatypes at the edges (FP16 throughout, INT64 features, ArgMax labels), several inputs;
- real torch.onnx exports (legacy and dynamo) of tiny models, committed under fixtures/torch;
- graphs the importer must refuse (Conv, LSTM, Loop, ZipMap, string labels, unsafe external data), each
  with the substrings its refusal must name.

``write_repository(OUTDIR)`` lays the served cases out as a model repository (``<name>/1/model.onnx``,
``<name>/config.yaml``, ``<name>/inputs.npz``); ``write_refusals(DIR)`` lays out the refused ones the same
way. Everything is deterministic (seeded). scripts/make_exporter_corpus.py is the command-line front end.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import pathlib
import shutil
import warnings
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONFIG_YAML = "max_batch_size: 64\nworkers: 1\n"
# Real torch.onnx exports, committed; scripts/export_torch_fixtures.py regenerates them (it needs torch).
TORCH_FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "torch"
BATCH_SIZES = (1, 3, 64)
SEED = 20261204

FLOAT = TensorProto.FLOAT
FLOAT16 = TensorProto.FLOAT16
INT64 = TensorProto.INT64


# ---------------------------------------------------------------------------------------------------------
# Building blocks


class Graph:
    """Collects nodes and initializers, naming them the way one exporter does.

    ``style="legacy"`` names like torch.onnx's TorchScript exporter: node ``/fc1/Gemm``, output
    ``/fc1/Gemm_output_0``; scalars and shapes are Constant nodes. ``style="dynamo"`` names like the dynamo
    exporter: node ``node_linear``, output ``linear``, ``linear_1`` for the next one.
    """

    def __init__(self, seed: int, style: str = "legacy", dtype=np.float32):
        self.rng = np.random.default_rng(seed)
        self.style = style
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counts: collections.Counter = collections.Counter()

    def _name(self, scope: str, base: str) -> tuple[str, str]:
        key = (scope, base) if self.style == "legacy" else base.lower()
        n = self.counts[key]
        self.counts[key] += 1
        if self.style == "legacy":
            node = f"{scope}/{base}" + (f"_{n}" if n else "")
            return node, f"{node}_output_0"
        value = base.lower() + (f"_{n}" if n else "")
        return f"node_{value}", value

    def init(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name: str, shape, scale: float | None = None) -> str:
        fan_in = shape[-1] if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.init(name, (self.rng.standard_normal(shape) * scale).astype(self.dtype))

    def op(self, op_type: str, inputs: list[str], scope: str = "", name: str | None = None,
           outputs: int = 1, domain: str = "", **attrs) -> str | list[str]:
        node_name, out = self._name(scope, name or op_type)
        names = [out] + [out.replace("_output_0", f"_output_{i}") if self.style == "legacy" else f"{out}_{i}"
                         for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name, domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, array, scope: str = "") -> str:
        """A Constant node, as the legacy exporter writes scalars and shape pieces."""
        array = np.asarray(array)
        return self.op("Constant", [], scope=scope, value=numpy_helper.from_array(array, ""))

    def output_as(self, value: str, name: str) -> None:
        """Renames the node output ``value`` to the graph output ``name``."""
        for node in self.nodes:
            for i, out in enumerate(node.output):
                if out == value:
                    node.output[i] = name
            for i, inp in enumerate(node.input):
                if inp == value:
                    node.input[i] = name

    def model(self, inputs, outputs, opset: int, name: str = "main_graph", ir_version: int | None = None,
              extra_opsets=(), producer=("pytorch", "2.9.0"), value_info=()) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers, value_info=value_info)
        opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
        model = helper.make_model(graph, opset_imports=opsets, producer_name=producer[0],
                                  producer_version=producer[1])
        model.ir_version = ir_version or {11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9,
                                          20: 9, 21: 10}.get(opset, 8)
        return model


def tensor(name: str, elem_type: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def linear_legacy(g: Graph, x: str, scope: str, n_in: int, n_out: int) -> str:
    """nn.Linear on a 2-D input, legacy exporter: Gemm(x, W, b, alpha=1, beta=1, transB=1)."""
    w = g.weight(f"{scope}.weight", (n_out, n_in))
    b = g.weight(f"{scope}.bias", (n_out,), scale=0.1)
    return g.op("Gemm", [x, w, b], scope=f"/{scope}", alpha=1.0, beta=1.0, transB=1)


def layer_norm_decomposed(g: Graph, x: str, scope: str, width: int, opset: int, eps: float = 1e-5) -> str:
    """nn.LayerNorm as the legacy exporter writes it below opset 17."""
    s = f"/{scope}"
    gamma = g.init(f"{scope}.weight", (1.0 + 0.1 * g.rng.standard_normal(width)).astype(g.dtype))
    beta = g.init(f"{scope}.bias", (0.1 * g.rng.standard_normal(width)).astype(g.dtype))
    mean = g.op("ReduceMean", [x], scope=s, axes=[-1])
    centered = g.op("Sub", [x, mean], scope=s)
    two = g.const(np.array(2.0, dtype=g.dtype), scope=s)
    squared = g.op("Pow", [centered, two], scope=s)
    var = g.op("ReduceMean", [squared], scope=s, axes=[-1])
    epsilon = g.const(np.array(eps, dtype=g.dtype), scope=s)
    shifted = g.op("Add", [var, epsilon], scope=s)
    std = g.op("Sqrt", [shifted], scope=s)
    normed = g.op("Div", [centered, std], scope=s)
    scaled = g.op("Mul", [normed, gamma], scope=s)
    return g.op("Add", [scaled, beta], scope=s)


def gelu_erf(g: Graph, x: str, scope: str) -> str:
    """nn.GELU() as both exporters write it before opset 20: x * 0.5 * (1 + erf(x / sqrt(2)))."""
    s = f"/{scope}"
    sqrt2 = g.const(np.array(1.4142135381698608, dtype=g.dtype), scope=s)
    div = g.op("Div", [x, sqrt2], scope=s)
    erf = g.op("Erf", [div], scope=s)
    one = g.const(np.array(1.0, dtype=g.dtype), scope=s)
    add = g.op("Add", [erf, one], scope=s)
    mul = g.op("Mul", [x, add], scope=s)
    half = g.const(np.array(0.5, dtype=g.dtype), scope=s)
    return g.op("Mul", [mul, half], scope=s)


def silu(g: Graph, x: str, scope: str) -> str:
    """nn.SiLU as the legacy exporter writes it: Sigmoid then Mul."""
    sig = g.op("Sigmoid", [x], scope=f"/{scope}")
    return g.op("Mul", [x, sig], scope=f"/{scope}")


def view_batch_flat(g: Graph, x: str, opset: int) -> str:
    """``x.view(x.size(0), -1)`` as torch 2.x's legacy exporter writes it: Shape, Gather(Constant 0), Unsqueeze
    (axes attribute below opset 13, an unscoped Constant input ``onnx::Unsqueeze_N`` from 13), Concat with
    Constant [-1], Reshape (``allowzero=0`` from opset 14)."""
    shape = g.op("Shape", [x])
    batch = g.op("Gather", [shape, g.const(np.array(0, dtype=np.int64))], axis=0)
    if opset < 13:
        batch_1d = g.op("Unsqueeze", [batch], axes=[0])
    else:
        axes = f"onnx::Unsqueeze_{len(g.nodes) + 10}"
        g.nodes.append(helper.make_node("Constant", [], [axes], name=f"Constant_{len(g.nodes) + 9}",
                                        value=numpy_helper.from_array(np.array([0], dtype=np.int64), "")))
        batch_1d = g.op("Unsqueeze", [batch, axes])
    target = g.op("Concat", [batch_1d, g.const(np.array([-1], dtype=np.int64))], axis=0)
    attrs = {"allowzero": 0} if opset >= 14 else {}
    return g.op("Reshape", [x, target], **attrs)


# ---------------------------------------------------------------------------------------------------------
# torch.onnx legacy exporter (dynamo=False)


def torch_legacy_mlp(opset: int) -> onnx.ModelProto:
    """Linear → BatchNorm1d → ReLU → Dropout → Linear → ReLU → Linear → LogSoftmax, as exported in eval
    mode with dropout kept (training=TrainingMode.PRESERVE), dynamic_axes={'input': {0: 'batch_size'}}."""
    g = Graph(SEED + opset)
    h = linear_legacy(g, "input", "fc1", 24, 48)
    bn = [g.init("bn1.weight", (1 + 0.1 * g.rng.standard_normal(48)).astype(np.float32)),
          g.init("bn1.bias", (0.1 * g.rng.standard_normal(48)).astype(np.float32)),
          g.init("bn1.running_mean", (0.2 * g.rng.standard_normal(48)).astype(np.float32)),
          g.init("bn1.running_var", g.rng.uniform(0.5, 2.0, 48).astype(np.float32))]
    bn_attrs = {"epsilon": 1e-5, "momentum": 0.9}
    if opset >= 14:
        bn_attrs["training_mode"] = 0
    h = g.op("BatchNormalization", [h, *bn], scope="/bn1", **bn_attrs)
    h = g.op("Relu", [h], scope="/act1")
    if opset < 12:
        h = g.op("Dropout", [h], scope="/drop", ratio=0.25)
    else:
        ratio = g.const(np.array(0.25, dtype=np.float32), scope="/drop")
        training = g.const(np.array(False), scope="/drop")
        h = g.op("Dropout", [h, ratio, training], scope="/drop")
    h = linear_legacy(g, h, "fc2", 48, 32)
    h = g.op("Relu", [h], scope="/act2")
    h = linear_legacy(g, h, "head", 32, 10)
    out = g.op("LogSoftmax", [h], scope="", axis=1)
    g.output_as(out, "output")
    return g.model([tensor("input", FLOAT, ["batch_size", 24])], [tensor("output", FLOAT, ["batch_size", 10])],
                   opset, name="main_graph", producer=("pytorch", "2.5.1"))


def torch_legacy_layernorm(opset: int) -> onnx.ModelProto:
    """Flatten → Linear → LayerNorm → GELU → Dropout (eval, no extra inputs) → Linear → SiLU → Linear →
    Identity, with LayerNorm decomposed below opset 17 and LayerNormalization from 17."""
    g = Graph(SEED + 100 + opset)
    x = g.op("Flatten", ["x"], scope="/flatten", axis=1)
    h = linear_legacy(g, x, "proj", 32, 64)
    if opset < 17:
        h = layer_norm_decomposed(g, h, "norm", 64, opset)
    else:
        gamma = g.init("norm.weight", (1.0 + 0.1 * g.rng.standard_normal(64)).astype(np.float32))
        beta = g.init("norm.bias", (0.1 * g.rng.standard_normal(64)).astype(np.float32))
        h = g.op("LayerNormalization", [h, gamma, beta], scope="/norm", axis=-1, epsilon=1e-5)
    h = gelu_erf(g, h, "act")
    h = g.op("Dropout", [h], scope="/drop")
    h = linear_legacy(g, h, "mid", 64, 32)
    h = silu(g, h, "act2")
    h = linear_legacy(g, h, "head", 32, 6)
    g.op("Identity", [h], scope="")
    g.output_as(g.nodes[-1].output[0], "logits")
    return g.model([tensor("x", FLOAT, ["batch", 32])], [tensor("logits", FLOAT, ["batch", 6])], opset,
                   producer=("pytorch", "2.1.2"))


def torch_legacy_view(opset: int) -> onnx.ModelProto:
    """A model whose forward starts with ``x = x.view(x.size(0), -1)`` on an [N, 4, 5] input: Shape →
    Gather → Unsqueeze → Concat([-1]) → Reshape, then Linear → ReLU → Linear → Softmax."""
    g = Graph(SEED + 200 + opset)
    flat = view_batch_flat(g, "input.1", opset)
    h = linear_legacy(g, flat, "fc1", 20, 40)
    h = g.op("Relu", [h], scope="/relu")
    h = linear_legacy(g, h, "fc2", 40, 5)
    out = g.op("Softmax", [h], scope="", axis=1)
    g.output_as(out, "probs")
    return g.model([tensor("input.1", FLOAT, ["N", 4, 5])], [tensor("probs", FLOAT, ["N", 5])], opset,
                   producer=("pytorch", "1.13.1"))


# ---------------------------------------------------------------------------------------------------------
# torch dynamo exporter (torch >= 2.9 default)


def dynamo_model(g: Graph, inputs, outputs, opset: int) -> onnx.ModelProto:
    return g.model(inputs, outputs, opset, name="main_graph", ir_version=10, producer=("pytorch", "2.9.1"),
                   extra_opsets=[("pkg.onnxscript.torch_lib.common", 1)])


def linear_dynamo(g: Graph, x: str, scope: str, n_in: int, n_out: int, gemm: bool) -> str:
    w = g.weight(f"{scope}.weight", (n_out, n_in))
    b = g.weight(f"{scope}.bias", (n_out,), scale=0.1)
    if gemm:
        return g.op("Gemm", [x, w, b], name="linear", alpha=1.0, beta=1.0, transA=0, transB=1)
    wt = g.op("Transpose", [w], name="permute", perm=[1, 0])
    mm = g.op("MatMul", [x, wt], name="matmul")
    return g.op("Add", [mm, b], name="add")


def torch_dynamo_mlp(opset: int, gemm: bool, gelu_op: bool) -> onnx.ModelProto:
    """Linear → LayerNormalization → GELU → Linear → ReLU → Reshape(constant [-1, 32]) → Linear →
    LogSoftmax, batch dimension ``s0``, weights in model.onnx.data."""
    g = Graph(SEED + 300 + opset + 10 * gemm + 20 * gelu_op, style="dynamo")
    h = linear_dynamo(g, "x", "fc1", 40, 64, gemm)
    gamma = g.init("norm.weight", (1.0 + 0.1 * g.rng.standard_normal(64)).astype(np.float32))
    beta = g.init("norm.bias", (0.1 * g.rng.standard_normal(64)).astype(np.float32))
    h = g.op("LayerNormalization", [h, gamma, beta], name="layer_norm", axis=-1, epsilon=1e-5, stash_type=1)
    if gelu_op:
        h = g.op("Gelu", [h], name="gelu", approximate="none")
    else:
        h = gelu_erf(g, h, "gelu")
    h = linear_dynamo(g, h, "fc2", 64, 32, gemm)
    h = g.op("Relu", [h], name="relu")
    shape = g.op("Constant", [], name="val", value=numpy_helper.from_array(np.array([-1, 32], dtype=np.int64), ""))
    h = g.op("Reshape", [h, shape], name="view", allowzero=1)
    h = linear_dynamo(g, h, "head", 32, 8, gemm)
    out = g.op("LogSoftmax", [h], name="log_softmax", axis=-1)
    g.output_as(out, "log_softmax")
    return dynamo_model(g, [tensor("x", FLOAT, ["s0", 40])], [tensor("log_softmax", FLOAT, ["s0", 8])], opset)


# ---------------------------------------------------------------------------------------------------------
# Datatypes and several inputs


def fp16_mlp() -> onnx.ModelProto:
    """``model.half()`` exported: FP16 input, weights and output; Gemm → ReLU → Gemm → Softmax."""
    g = Graph(SEED + 400, dtype=np.float16)
    h = linear_legacy(g, "input", "fc1", 32, 48)
    h = g.op("Relu", [h], scope="/relu")
    h = linear_legacy(g, h, "fc2", 48, 12)
    out = g.op("Softmax", [h], scope="", axis=1)
    g.output_as(out, "output")
    return g.model([tensor("input", FLOAT16, ["batch_size", 32])], [tensor("output", FLOAT16, ["batch_size", 12])],
                   17)


def fp16_dynamo_mlp() -> onnx.ModelProto:
    """FP16 dynamo export with external data: MatMul(Transpose(W)) + Add, Sigmoid, LayerNormalization."""
    g = Graph(SEED + 401, style="dynamo", dtype=np.float16)
    h = linear_dynamo(g, "x", "fc1", 24, 32, gemm=False)
    h = g.op("Sigmoid", [h], name="sigmoid")
    gamma = g.init("norm.weight", (1.0 + 0.1 * g.rng.standard_normal(32)).astype(np.float16))
    beta = g.init("norm.bias", (0.1 * g.rng.standard_normal(32)).astype(np.float16))
    h = g.op("LayerNormalization", [h, gamma, beta], name="layer_norm", axis=-1, epsilon=1e-5, stash_type=1)
    out = linear_dynamo(g, h, "head", 32, 4, gemm=False)
    g.output_as(out, "add_2")
    return dynamo_model(g, [tensor("x", FLOAT16, ["s0", 24])], [tensor("add_2", FLOAT16, ["s0", 4])], 18)


def int64_features() -> onnx.ModelProto:
    """Count features as INT64: Cast(to=FLOAT) → Gemm → Tanh → Gemm."""
    g = Graph(SEED + 500)
    x = g.op("Cast", ["counts"], scope="", to=FLOAT)
    h = linear_legacy(g, x, "fc1", 16, 32)
    h = g.op("Tanh", [h], scope="/tanh")
    out = linear_legacy(g, h, "fc2", 32, 3)
    g.output_as(out, "score")
    return g.model([tensor("counts", INT64, ["batch_size", 16])], [tensor("score", FLOAT, ["batch_size", 3])], 17)


def multi_input() -> onnx.ModelProto:
    """A tabular model with three inputs (numeric FP32, INT64 categorical codes, FP32 flags): Cast, Concat
    along axis 1, then an MLP with a Softmax head."""
    g = Graph(SEED + 600)
    codes = g.op("Cast", ["categorical"], scope="", to=FLOAT)
    x = g.op("Concat", ["numeric", codes, "flags"], scope="", axis=1)
    h = linear_legacy(g, x, "fc1", 12 + 6 + 4, 32)
    h = g.op("Relu", [h], scope="/relu")
    h = linear_legacy(g, h, "fc2", 32, 4)
    out = g.op("Softmax", [h], scope="", axis=1)
    g.output_as(out, "probabilities")
    return g.model(
        [tensor("numeric", FLOAT, ["batch", 12]), tensor("categorical", INT64, ["batch", 6]),
         tensor("flags", FLOAT, ["batch", 4])],
        [tensor("probabilities", FLOAT, ["batch", 4])], 15)


def argmax_head() -> onnx.ModelProto:
    """An MLP returning both its probabilities and ArgMax(axis=1, keepdims=0) as INT64 labels."""
    g = Graph(SEED + 700)
    h = linear_legacy(g, "input", "fc1", 20, 32)
    h = g.op("Relu", [h], scope="/relu")
    h = linear_legacy(g, h, "fc2", 32, 7)
    probs = g.op("Softmax", [h], scope="", axis=1)
    label = g.op("ArgMax", [probs], scope="", axis=1, keepdims=0)
    g.output_as(probs, "probabilities")
    g.output_as(label, "label")
    return g.model([tensor("input", FLOAT, ["batch_size", 20])],
                   [tensor("label", INT64, ["batch_size"]), tensor("probabilities", FLOAT, ["batch_size", 7])], 13)


# ---------------------------------------------------------------------------------------------------------
# scikit-learn through skl2onnx, default options


def _sklearn_data(seed: int, width: int, n: int = 300):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, width)) * rng.uniform(0.5, 4.0, width) + rng.uniform(-3, 3, width))
    return rng, x.astype(np.float32)


def _to_onnx(estimator, x, zipmap: bool | None):
    """skl2onnx's own defaults; ``zipmap`` False is the one option a classifier's export needs."""
    from skl2onnx import to_onnx

    options = {"zipmap": False} if zipmap is False else None
    return to_onnx(estimator, x[:1], options=options)


def _mlp(kind, hidden):
    return kind(hidden_layer_sizes=hidden, max_iter=300, random_state=0)


# kind: (feature width, target, zipmap: None for a regressor, False or True for a classifier, estimator)
SKLEARN_KINDS = {
    "std_mlp_clf": (30, "multi", False, lambda m: m.pipe(m.StandardScaler(), _mlp(m.MLPClassifier, (32,)))),
    "minmax_mlp_clf": (24, "binary", False, lambda m: m.pipe(m.MinMaxScaler(), _mlp(m.MLPClassifier, (16, 16)))),
    "robust_mlp_reg": (20, "reg", None, lambda m: m.pipe(m.RobustScaler(), _mlp(m.MLPRegressor, (24,)))),
    # One target: skl2onnx reshapes a multi-target MLPRegressor's output to [-1, 1].
    "std_mlp_reg": (40, "reg", None, lambda m: m.pipe(m.StandardScaler(), _mlp(m.MLPRegressor, (32, 16)))),
    "logreg_binary": (20, "binary", False, lambda m: m.LogisticRegression(max_iter=500)),
    "logreg_multi": (32, "multi", False, lambda m: m.LogisticRegression(max_iter=500)),
    "linreg": (64, "reg", None, lambda m: m.LinearRegression()),
    "normalizer_logreg": (28, "multi", False, lambda m: m.pipe(m.Normalizer(), m.LogisticRegression(max_iter=500))),
    "normalizer_linreg": (24, "reg", None, lambda m: m.pipe(m.Normalizer(), m.LinearRegression())),
    "bare_mlp_clf": (36, "labels_3_7_11", False, lambda m: _mlp(m.MLPClassifier, (20,))),
    "columns_mlp_clf": (20, "multi", False, lambda m: m.pipe(
        m.ColumnTransformer([("num", m.StandardScaler(), list(range(12))),
                             ("flags", m.Binarizer(threshold=0.2), list(range(12, 20)))]),
        _mlp(m.MLPClassifier, (16,)))),
    "zipmap_clf": (20, "multi", True, lambda m: _mlp(m.MLPClassifier, (8,))),
    "string_labels": (20, "strings", False, lambda m: m.LogisticRegression(max_iter=500)),
}


class _Sklearn:
    """The scikit-learn names the table above uses, imported only when a case is built."""

    def __init__(self):
        from sklearn import compose, linear_model, neural_network, pipeline, preprocessing

        self.pipe = pipeline.make_pipeline
        for module in (compose, linear_model, neural_network, preprocessing):
            self.__dict__.update({k: v for k, v in vars(module).items() if k[:1].isupper()})


def sklearn_case(kind: str) -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        width, target, zipmap, make = SKLEARN_KINDS[kind]
        rng, x = _sklearn_data(SEED + sum(map(ord, kind)), width)
        score = (x - x.mean(0)) / x.std(0) @ rng.standard_normal((width, 3))
        y = {
            "multi": score.argmax(1),
            "binary": (score[:, 0] > 0).astype(np.int64),
            "reg": score[:, 0] + 0.5 * np.tanh(score[:, 1]),
            "labels_3_7_11": np.array([3, 7, 11])[score.argmax(1)],  # integer labels that are not 0..k-1
            "strings": np.array(["cat", "dog", "fox"])[score.argmax(1)],
        }[target]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLPs stop at max_iter before converging; fine for a corpus
            estimator = make(_Sklearn()).fit(x, y)
        return _to_onnx(estimator, x, zipmap)

    return build


# ---------------------------------------------------------------------------------------------------------
# Graphs the importer must refuse


def conv_model() -> onnx.ModelProto:
    """A 1-D CNN as the legacy exporter writes it: Conv → Relu → Flatten → Gemm."""
    g = Graph(SEED + 800)
    w = g.weight("conv.weight", (4, 2, 3))
    b = g.weight("conv.bias", (4,), scale=0.1)
    h = g.op("Conv", ["input", w, b], scope="/conv", kernel_shape=[3], pads=[1, 1], strides=[1])
    h = g.op("Relu", [h], scope="/relu")
    h = g.op("Flatten", [h], scope="/flatten", axis=1)
    out = linear_legacy(g, h, "fc", 4 * 16, 3)
    g.output_as(out, "output")
    return g.model([tensor("input", FLOAT, ["batch_size", 2, 16])], [tensor("output", FLOAT, ["batch_size", 3])], 17)


def lstm_model() -> onnx.ModelProto:
    """nn.LSTM(8, 16, batch_first=True) over [batch, 5, 8] (the legacy exporter's Transpose to time-major
    first), then a Linear on the last hidden state."""
    g = Graph(SEED + 900)
    w = g.weight("onnx::LSTM_101", (1, 64, 8))
    r = g.weight("onnx::LSTM_102", (1, 64, 16))
    b = g.weight("onnx::LSTM_103", (1, 128), scale=0.1)
    time_major = g.op("Transpose", ["input"], scope="/lstm", perm=[1, 0, 2])
    _, h_n, _ = g.op("LSTM", [time_major, w, r, b], scope="/lstm", outputs=3, hidden_size=16)
    squeezed = g.op("Squeeze", [h_n, g.const(np.array([0], dtype=np.int64))], scope="/lstm")
    out = linear_legacy(g, squeezed, "fc", 16, 2)
    g.output_as(out, "output")
    return g.model([tensor("input", FLOAT, ["batch", 5, 8])], [tensor("output", FLOAT, ["batch", 2])], 14)


def loop_model() -> onnx.ModelProto:
    """A scripted loop (torch.jit.script with a for loop): Loop over a body that applies Gemm + Tanh."""
    g = Graph(SEED + 1000)
    w = g.weight("cell.weight", (16, 16))
    body_nodes = [
        helper.make_node("Gemm", ["h_in", w], ["h_gemm"], name="/cell/Gemm", transB=1),
        helper.make_node("Tanh", ["h_gemm"], ["h_out"], name="/cell/Tanh"),
        helper.make_node("Identity", ["cond_in"], ["cond_out"], name="/Identity"),
    ]
    body = helper.make_graph(
        body_nodes, "loop_body",
        [tensor("i", INT64, []), tensor("cond_in", TensorProto.BOOL, []), tensor("h_in", FLOAT, ["batch", 16])],
        [tensor("cond_out", TensorProto.BOOL, []), tensor("h_out", FLOAT, ["batch", 16])],
    )
    trip = g.init("trip_count", np.array(3, dtype=np.int64))
    cond = g.init("cond", np.array(True))
    g.nodes.append(helper.make_node("Loop", [trip, cond, "input"], ["output"], name="/Loop", body=body))
    return g.model([tensor("input", FLOAT, ["batch", 16])], [tensor("output", FLOAT, ["batch", 16])], 16)


def small_external_model(seed: int) -> onnx.ModelProto:
    g = Graph(seed, style="dynamo")
    h = linear_dynamo(g, "x", "fc1", 16, 32, gemm=True)
    h = g.op("Relu", [h], name="relu")
    out = linear_dynamo(g, h, "fc2", 32, 8, gemm=True)
    g.output_as(out, "out")
    return dynamo_model(g, [tensor("x", FLOAT, ["s0", 16])], [tensor("out", FLOAT, ["s0", 8])], 18)


# ---------------------------------------------------------------------------------------------------------
# The corpus


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus model.

    ``external_data``: weights go to ``model.onnx.data`` beside ``model.onnx``. ``refusal``: substrings the
    importer's refusal must contain (empty for a model that must be served); ``kind`` says which test judges
    the refusal ("non_mlp": node and operator named, "zipmap", "strings", "external"). ``tamper``: for unsafe
    external-data cases, rewrites the saved model's external-data entries (``(tensor, entry) -> None``).
    ``fixture``: the folder under fixtures/torch whose files are copied as they are.
    """

    name: str
    build: Callable[[], onnx.ModelProto]
    exercises: str
    external_data: bool = False
    refusal: tuple[str, ...] = ()
    tamper: Callable | None = None
    fixture: str | None = None
    kind: str = ""


def torch_export(name: str, exercises: str, **refusal) -> Case:
    """A real torch.onnx export from fixtures/torch/<name>, copied as it is (with its model.onnx.data)."""
    folder = TORCH_FIXTURES / name
    case_name = name if name.startswith("refuse_") else f"torch_real_{name}"
    return Case(case_name, lambda: onnx.load_model(str(folder / "model.onnx"), load_external_data=False),
                exercises, external_data=(folder / "model.onnx.data").exists(), fixture=name, **refusal)


def sklearn_export(kind: str, exercises: str) -> Case:
    """A scikit-learn model of `kind` (SKLEARN_KINDS) converted by skl2onnx, as case sk_<kind>."""
    return Case(f"sk_{kind}", sklearn_case(kind), exercises)


def legacy_cases(build: Callable[[int], onnx.ModelProto], opsets, exercises: Callable[[int], str]) -> list[Case]:
    """One case per opset of a torch legacy export reproduced by `build(opset)` (torch_legacy_<kind>), named
    torch_legacy_<kind>_op<opset> and described by `exercises(opset)`."""
    kind = build.__name__.removeprefix("torch_legacy_")
    return [Case(f"torch_legacy_{kind}_op{v}", functools.partial(build, v), exercises(v)) for v in opsets]


SERVED = [
    sklearn_export("std_mlp_clf", "skl2onnx (opset 21 + ai.onnx.ml 1): StandardScaler as ml Scaler, Cast, "
                   "MLPClassifier 3 classes as MatMul/Add/Relu/Softmax, Identity, ArgMax, ml ArrayFeatureExtractor "
                   "over the classes, Reshape, Cast; label INT64 [N] + probabilities FP32; unnamed batch dimension"),
    sklearn_export("minmax_mlp_clf", "skl2onnx (opset 22): MinMaxScaler as Cast/Mul/Add/Cast (not Scaler), binary "
                   "MLPClassifier (Sigmoid, Sub from 1, Concat of the two columns)"),
    sklearn_export("robust_mlp_reg", "skl2onnx (opset 21): RobustScaler as ml Scaler, MLPRegressor "
                   "(MatMul/Add/Relu), Reshape to [N, 1]"),
    sklearn_export("std_mlp_reg", "skl2onnx (opset 21): StandardScaler as ml Scaler, MLPRegressor with two hidden "
                   "layers, Reshape"),
    sklearn_export("logreg_binary", "skl2onnx (default domain 22 stamped twice): LogisticRegression binary as one ml "
                   "LinearClassifier (post_transform LOGISTIC, multi_class 0)"),
    sklearn_export("logreg_multi", "skl2onnx: LogisticRegression multiclass as ml LinearClassifier (SOFTMAX, "
                   "multi_class 1) + ml Normalizer L1"),
    sklearn_export("linreg", "skl2onnx: LinearRegression as one ml LinearRegressor"),
    sklearn_export("normalizer_logreg", "skl2onnx: Normalizer (ml Normalizer L2) + LogisticRegression multiclass "
                   "(LinearClassifier, Normalizer L1)"),
    sklearn_export("normalizer_linreg", "skl2onnx: Normalizer L2 → LinearRegressor"),
    sklearn_export("columns_mlp_clf", "skl2onnx (opset 21): ColumnTransformer as ml ArrayFeatureExtractor with "
                   "constant column indices, StandardScaler (Scaler) on 12 columns, Binarizer on 8, Concat, "
                   "MLPClassifier"),
    sklearn_export("bare_mlp_clf", "skl2onnx (opset 21): bare MLPClassifier with integer labels 3/7/11 "
                   "(ArrayFeatureExtractor over classes)"),
    *legacy_cases(torch_legacy_mlp, (11, 12, 14, 15, 17), lambda v:
                  f"torch legacy opset {v}: Gemm transB=1, BatchNormalization, Dropout "
                  + ("(ratio attribute)" if v < 12 else "(ratio, training_mode inputs)") + ", LogSoftmax"),
    *legacy_cases(torch_legacy_layernorm, (11, 13, 16, 17), lambda v:
                  f"torch legacy opset {v}: Flatten, "
                  + ("LayerNorm decomposed (ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul/Add)" if v < 17
                     else "LayerNormalization")
                  + ", GELU erf form, Dropout, SiLU (Sigmoid×Mul), Identity"),
    *legacy_cases(torch_legacy_view, (11, 13, 17), lambda v:
                  f"torch legacy opset {v}: x.view(x.size(0), -1) on [N,4,5] as Shape/Gather/Unsqueeze"
                  + (" (axes attribute)" if v < 13 else " (axes input)") + "/Concat/Reshape, Softmax"),
    Case("torch_dynamo_gemm_op18", lambda: torch_dynamo_mlp(18, gemm=True, gelu_op=False),
         "torch dynamo opset 18, external data: Gemm transB, LayerNormalization, GELU erf form, Reshape "
         "allowzero=1 with constant shape, LogSoftmax, batch dim s0", external_data=True),
    Case("torch_dynamo_matmul_op18", lambda: torch_dynamo_mlp(18, gemm=False, gelu_op=False),
         "torch dynamo opset 18, external data: Transpose(initializer) + MatMul + Add, LayerNormalization",
         external_data=True),
    Case("torch_dynamo_gelu_op20", lambda: torch_dynamo_mlp(20, gemm=True, gelu_op=True),
         "torch dynamo opset 20, external data: Gemm, LayerNormalization, Gelu op, LogSoftmax", external_data=True),
    Case("torch_dynamo_matmul_gelu_op20", lambda: torch_dynamo_mlp(20, gemm=False, gelu_op=True),
         "torch dynamo opset 20, external data: Transpose + MatMul + Add, Gelu op", external_data=True),
    Case("fp16_mlp", fp16_mlp, "FP16 input, weights and output; Gemm/Relu/Softmax opset 17"),
    Case("fp16_dynamo", fp16_dynamo_mlp,
         "FP16 dynamo opset 18, external data: Transpose+MatMul+Add, Sigmoid, LayerNormalization", external_data=True),
    Case("int64_features", int64_features, "INT64 input → Cast to FLOAT → Gemm/Tanh/Gemm"),
    Case("multi_input", multi_input, "three inputs (FP32, INT64 → Cast, FP32) → Concat axis 1 → MLP, Softmax"),
    Case("argmax_head", argmax_head, "two outputs: INT64 ArgMax labels [N] and FP32 probabilities"),
    *[torch_export(f"legacy_view_norm_op{v}",
                   f"real torch legacy export, opset {v}: Identity aliases of equal initializers, "
                   "x.view(x.size(0), -1) as Shape/Gather/Unsqueeze/Concat/Reshape, Gemm, BatchNormalization, "
                   + ("decomposed LayerNorm" if v < 17 else "LayerNormalization")
                   + ", GELU erf form, SiLU as Sigmoid×Mul, LogSoftmax")
      for v in (11, 13, 17)],
    torch_export("legacy_batchnorm_op15", "real torch legacy export, opset 15: Gemm, BatchNormalization "
                 "(training_mode=0), Relu, Softmax; eval Dropout dropped by the exporter"),
    torch_export("legacy_tabular_op17", "real torch legacy export, opset 17: three inputs (FP32, INT64 → Cast, "
                 "FP32), Concat axis 1, Gemm, Softmax, ArgMax label output INT64"),
    torch_export("legacy_rank3_op17", "real torch legacy export, opset 17: Linear without bias as MatMul with a "
                 "pre-transposed initializer onnx::MatMul_18, Unsqueeze/Squeeze with Constant axes, Add(bias, x) "
                 "with the bias first, output named '17'"),
    torch_export("legacy_flatten_op13", "real torch legacy export, opset 13: nn.Flatten on [N,4,5] as "
                 "Flatten(axis=1), Gemm, Tanh; output named '8'"),
    torch_export("legacy_fp16_op17", "real torch legacy export of model.half(), opset 17: FP16 input, weights "
                 "and output, BatchNormalization in FP16"),
    torch_export("legacy_fp64_op17", "real torch legacy export of model.double(), opset 17: FP64 input, weights "
                 "and output, Gemm, BatchNormalization, Softmax"),
    torch_export("legacy_activations_op17", "real torch legacy export, opset 17: ReLU6 as Clip(0, 6) with Constant "
                 "bounds, HardSwish, HardSigmoid(alpha=1/6), Elu, Selu, PRelu with a [16] slope, Softplus, Mish as "
                 "Softplus/Tanh/Mul, LeakyRelu, clamp as Clip, Mul by a constant, Abs, ReduceSum(axes input, "
                 "keepdims=1), Neg, Exp, Add broadcasting [N,1]"),
    torch_export("dynamo_activations", "real torch dynamo export, opset 20: Clip with initializer bounds, HardSwish, "
                 "HardSigmoid(alpha, beta), Elu, Selu, PRelu, Softplus as Softplus + Greater(x, 20) + Where (a "
                 "data-dependent Where), Mish op, LeakyRelu, ReduceSum(noop_with_empty_axes=0), Neg, Exp; "
                 "inlined-function node names (n4, n0_2)"),
    torch_export("dynamo_view_norm", "real torch dynamo export (default opset 20), external data above 1 KiB: "
                 "Reshape with initializer shape and allowzero=1, Gemm (BatchNorm folded in), "
                 "LayerNormalization, Gelu, Sigmoid×Mul, LogSoftmax; node metadata_props"),
    torch_export("dynamo_batchnorm_op18", "real torch dynamo export, opset 18, batch dim s77 "
                 "(Dim.DYNAMIC): BatchNorm folded into Gemm, Softmax"),
    torch_export("dynamo_tabular", "real torch dynamo export, opset 20: three inputs, Cast, Concat, Gemm, "
                 "Softmax and ArgMax outputs"),
    torch_export("dynamo_rank3", "real torch dynamo export, opset 20, external data: Gemm without C, "
                 "Unsqueeze/Squeeze sharing one axes initializer, MatMul with a pre-transposed initializer + Add"),
    torch_export("dynamo_flatten", "real torch dynamo export, opset 20: nn.Flatten as Reshape [-1, 20] "
                 "(allowzero=1), Gemm, Tanh"),
    torch_export("dynamo_fp16", "real torch dynamo export of model.half(), opset 20, external data: FP16 "
                 "input, weights and output, BatchNorm folded into the FP16 Gemm"),
]


def _absolute_location(t: onnx.TensorProto, entry) -> None:
    if entry.key == "location":
        entry.value = "/etc/passwd"


def _dotdot_location(t: onnx.TensorProto, entry) -> None:
    if entry.key == "location":
        entry.value = "../../../model.onnx.data"


def _past_end(t: onnx.TensorProto, entry) -> None:
    if entry.key == "offset":
        entry.value = str(int(entry.value) + (1 << 20))


def _length_past_end(t: onnx.TensorProto, entry) -> None:
    if entry.key == "length":
        entry.value = str(int(entry.value) + 4096)


REFUSED = [
    Case("refuse_conv", conv_model, "Conv (1-D CNN)", refusal=("/conv/Conv", "Conv"), kind="non_mlp"),
    Case("refuse_lstm", lstm_model, "LSTM behind a batch-first Transpose", refusal=("/lstm/LSTM", "LSTM"),
         kind="non_mlp"),
    Case("refuse_loop", loop_model, "Loop with a subgraph", refusal=("/Loop", "Loop"), kind="non_mlp"),
    torch_export("refuse_legacy_lstm", "real torch legacy LSTM export: h0/c0 from Shape/Gather/ConstantOfShape, "
                 "Transpose, LSTM, Gather of the last state", refusal=("/lstm/LSTM", "LSTM"), kind="non_mlp"),
    torch_export("refuse_dynamo_lstm", "real torch dynamo LSTM export: Shape(end=1)/Concat/Expand/Slice for the "
                 "states, Transpose, LSTM", refusal=("node_lstm__2", "LSTM"), kind="non_mlp"),
    torch_export("refuse_legacy_conv", "real torch legacy Conv1d export", refusal=("/conv/Conv", "Conv"),
                 kind="non_mlp"),
    torch_export("refuse_dynamo_conv", "real torch dynamo Conv1d export", refusal=("node_conv1d", "Conv"),
                 kind="non_mlp"),
    Case("refuse_zipmap", sklearn_case("zipmap_clf"), "skl2onnx classifier with the default ZipMap output",
         refusal=("ZipMap", "zipmap"), kind="zipmap"),
    Case("refuse_string_labels", sklearn_case("string_labels"), "LogisticRegression with string class labels",
         refusal=("label", "STRING"), kind="strings"),
    # Unsafe external data: each names the tampered tensor, fc1.weight.
    Case("refuse_external_absolute", lambda: small_external_model(SEED + 1100), "external location absolute",
         external_data=True, refusal=("fc1.weight",), tamper=_absolute_location, kind="external"),
    Case("refuse_external_dotdot", lambda: small_external_model(SEED + 1101), "external location with ..",
         external_data=True, refusal=("fc1.weight",), tamper=_dotdot_location, kind="external"),
    Case("refuse_external_offset", lambda: small_external_model(SEED + 1102), "external offset past the file end",
         external_data=True, refusal=("fc1.weight",), tamper=_past_end, kind="external"),
    Case("refuse_external_length", lambda: small_external_model(SEED + 1103), "external length past the file end",
         external_data=True, refusal=("fc1.weight",), tamper=_length_past_end, kind="external"),
]

# Which onnx dtype each input's sample batches use.
NUMPY_TYPES = {FLOAT: np.float32, FLOAT16: np.float16, INT64: np.int64, TensorProto.DOUBLE: np.float64,
               TensorProto.INT32: np.int32}


# ---------------------------------------------------------------------------------------------------------
# Writing


def save_model(model: onnx.ModelProto, directory: pathlib.Path, external_data: bool, tamper=None) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    if not external_data:
        onnx.save_model(model, str(path))
        return path
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    if tamper is not None:
        saved = onnx.load_model(str(path), load_external_data=False)
        for t in saved.graph.initializer:
            if t.name == "fc1.weight":
                for entry in t.external_data:
                    tamper(t, entry)
        onnx.save_model(saved, str(path))
    return path


def input_specs(model: onnx.ModelProto) -> list[tuple[str, int, list]]:
    """(name, elem_type, dims) of each graph input that is not an initializer."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        specs.append((value.name, t.elem_type, dims))
    return specs


def sample_inputs(model: onnx.ModelProto, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs for one batch: every symbolic dimension is the batch."""
    feeds = {}
    for name, elem_type, dims in input_specs(model):
        shape = [batch if d is None else d for d in dims]
        if elem_type == INT64:
            feeds[name] = rng.integers(0, 50, size=shape, dtype=np.int64)
        else:
            x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.uniform(-1, 1)
            feeds[name] = x.astype(NUMPY_TYPES[elem_type])
    return feeds


def write_case(case: Case, root: pathlib.Path) -> pathlib.Path:
    """Writes ``root/<name>/{1/model.onnx[, 1/model.onnx.data], config.yaml, inputs.npz}``."""
    model = case.build()
    folder = root / case.name
    if case.fixture:
        (folder / "1").mkdir(parents=True)
        for path in (TORCH_FIXTURES / case.fixture).iterdir():
            shutil.copyfile(path, folder / "1" / path.name)
    else:
        save_model(model, folder / "1", case.external_data, case.tamper)
    (folder / "config.yaml").write_text(CONFIG_YAML)
    rng = np.random.default_rng(SEED + sum(map(ord, case.name)))
    arrays = {}
    for i, batch in enumerate(BATCH_SIZES):
        for name, value in sample_inputs(model, batch, rng).items():
            arrays[f"batch{i}/{name}"] = value
    np.savez(folder / "inputs.npz", **arrays)
    return folder


def load_batches(folder: pathlib.Path) -> list[dict[str, np.ndarray]]:
    """The sample batches of ``inputs.npz``, in order: [{input name: array}]."""
    batches: dict[int, dict[str, np.ndarray]] = collections.defaultdict(dict)
    with np.load(folder / "inputs.npz") as data:
        for key in data.files:
            prefix, name = key.split("/", 1)
            batches[int(prefix.removeprefix("batch"))][name] = data[key]
    return [batches[i] for i in sorted(batches)]


def write_repository(root: os.PathLike, cases=None) -> list[Case]:
    """Writes every served case (or ``cases``) as a model repository under ``root``."""
    root = pathlib.Path(root)
    cases = SERVED if cases is None else cases
    for case in cases:
        write_case(case, root)
    return cases


def write_refusals(root: os.PathLike) -> list[Case]:
    """Writes every refused case under ``root`` with the same layout as a repository."""
    return write_repository(root, REFUSED)
