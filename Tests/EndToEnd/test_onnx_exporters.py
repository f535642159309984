"""Models exported by different tools, served through the gateway from a repository made at test time,
must agree with onnxruntime: onnx.helper graphs (Gemm with transposes, MatMul+Add, each activation) and
scikit-learn MLPs converted by skl2onnx."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)


def dense_graph(activation, trans_b):
    w1 = RNG.standard_normal((24, 33)).astype(np.float32) * 0.3
    w1 = w1 if trans_b else w1.T.copy()
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1 if trans_b else 0, alpha=0.9, beta=1.1)]
    act_inputs = ["h"]
    if activation == "LeakyRelu":
        nodes.append(helper.make_node("LeakyRelu", act_inputs, ["a"], alpha=0.05))
    else:
        nodes.append(helper.make_node(activation, act_inputs, ["a"]))
    nodes += [
        helper.make_node("MatMul", ["a", "w2"], ["m"]),
        helper.make_node("Add", ["m", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(RNG.standard_normal(24).astype(np.float32), "b1"),
        numpy_helper.from_array(RNG.standard_normal((24, 7)).astype(np.float32) * 0.3, "w2"),
        numpy_helper.from_array(RNG.standard_normal(7).astype(np.float32), "b2"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 33])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 7])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sklearn_graph():
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    x = RNG.standard_normal((200, 12)).astype(np.float32)
    y = (x[:, :3] * [1.0, -2.0, 0.5]).sum(axis=1)
    model = MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=2000, random_state=0).fit(x, y)
    return to_onnx(model, x[:1], target_opset=17)


MODELS = {
    "relu_transb": lambda: dense_graph("Relu", True),
    "tanh": lambda: dense_graph("Tanh", False),
    "sigmoid": lambda: dense_graph("Sigmoid", True),
    "leaky": lambda: dense_graph("LeakyRelu", False),
    "sk_mlp": sklearn_graph,
}


@pytest.fixture(scope="module")
def exported(start_gateway, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name, build in MODELS.items():
        (repo / name / "1").mkdir(parents=True)
        onnx.save(build(), str(repo / name / "1" / "model.onnx"))
        (repo / name / "config.yaml").write_text("max_batch_size: 32\nworkers: 1\n")
    return repo, start_gateway(repository=repo)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gateway_agrees_with_onnxruntime(exported, name):
    repo, gw = exported
    path = str(repo / name / "1" / "model.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_inputs()[0]
    width = meta.shape[1]
    x = RNG.standard_normal((5, width)).astype(np.float32)
    expected = session.run(None, {meta.name: x})[0]
    client = grpcclient.InferenceServerClient(gw.address)
    try:
        inp = grpcclient.InferInput(meta.name, [5, width], "FP32")
        inp.set_data_from_numpy(x)
        out_name = session.get_outputs()[0].name
        got = client.infer(name, [inp]).as_numpy(out_name)
    finally:
        client.close()
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
