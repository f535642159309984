"""The exporter corpus (exporter_corpus.py) served end to end: models as skl2onnx and torch.onnx (legacy and
dynamo) write them must load, report their real datatypes in ModelMetadata, and answer tritonclient in their
own datatypes as onnxruntime does on the same file; graphs outside the importer's reach (Conv, LSTM, Loop,
ZipMap, string labels, unsafe external data) must be refused by `switchyard models` with a message naming
what was wrong, and a refused model must not stop the others of its repository from serving.

One gateway serves the whole corpus (plus one refused model) for the module."""

import pathlib
import re
import shutil
import subprocess

import exporter_corpus as corpus
import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from conftest import binary
from onnx import TensorProto
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import triton_to_np_dtype

DATATYPES = {
    TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.DOUBLE: "FP64",
    TensorProto.INT64: "INT64", TensorProto.INT32: "INT32", TensorProto.BOOL: "BOOL",
}
# The refused model that shares the served repository.
BROKEN = "broken_conv"
SERVED = {case.name: case for case in corpus.SERVED}
REFUSED = {case.name: case for case in corpus.REFUSED}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    corpus.write_repository(root)
    refused = tmp_path_factory.mktemp("refused")
    corpus.write_refusals(refused)
    shutil.copytree(refused / "refuse_conv", root / BROKEN)
    return root, refused


@pytest.fixture(scope="module")
def gateway(repository, start_gateway):
    root, _ = repository
    return start_gateway(repository=root)


@pytest.fixture(scope="module")
def client(gateway):
    c = grpcclient.InferenceServerClient(gateway.address)
    yield c
    c.close()


def model_path(root: pathlib.Path, name: str) -> pathlib.Path:
    return root / name / "1" / "model.onnx"


def session(root: pathlib.Path, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_path(root, name)), providers=["CPUExecutionProvider"])


def declared(root: pathlib.Path, name: str):
    """(inputs, outputs) of the model file: [(name, KServe datatype)] in graph order."""
    model = onnx.load_model(str(model_path(root, name)), load_external_data=False)
    inputs = [(n, DATATYPES[t]) for n, t, _ in corpus.input_specs(model)]
    outputs = [(v.name, DATATYPES[v.type.tensor_type.elem_type]) for v in model.graph.output]
    return inputs, outputs


def run_models_check(repository: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), "models", "--model-repository", str(repository)],
                          check=False, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------------------------------------------------
# Served models


@pytest.mark.parametrize("name", sorted(SERVED))
def test_corpus_model_runs_in_onnxruntime(repository, name):
    """The corpus itself is sound: onnxruntime loads every served model and answers every sample batch."""
    root, _ = repository
    reference = session(root, name)
    for feeds in corpus.load_batches(root / name):
        rows = next(iter(feeds.values())).shape[0]
        assert all(value.shape[0] == rows for value in reference.run(None, feeds))


def load_failure(gateway, name: str) -> str:
    """The gateway's log lines about `name`, to say why a model is not ready."""
    return "\n".join(line for line in gateway.output().splitlines() if f"model={name} " in line)


@pytest.mark.parametrize("name", sorted(SERVED))
def test_metadata_reports_the_models_own_datatypes(repository, gateway, client, name):
    root, _ = repository
    inputs, outputs = declared(root, name)
    assert client.is_model_ready(name), f"{name} is not ready:\n{load_failure(gateway, name)}"
    meta = client.get_model_metadata(name)
    assert [(t.name, t.datatype) for t in meta.inputs] == inputs
    assert [(t.name, t.datatype) for t in meta.outputs] == outputs
    # Shapes: the batch dimension is -1, the others as onnxruntime computes them.
    batch = corpus.load_batches(root / name)[-1]
    rows = next(iter(batch.values())).shape[0]
    for t in meta.inputs:
        assert list(t.shape) == [-1, *batch[t.name].shape[1:]], f"input {t.name}"
    for t, value in zip(meta.outputs, session(root, name).run(None, batch), strict=True):
        assert value.shape[0] == rows
        assert list(t.shape) == [-1, *value.shape[1:]], f"output {t.name}"


@pytest.mark.parametrize("name", sorted(SERVED))
def test_inference_agrees_with_onnxruntime(repository, gateway, client, name):
    root, _ = repository
    assert client.is_model_ready(name), f"{name} is not ready:\n{load_failure(gateway, name)}"
    reference = session(root, name)
    _, outputs = declared(root, name)
    batches = corpus.load_batches(root / name)
    assert [next(iter(b.values())).shape[0] for b in batches] == list(corpus.BATCH_SIZES)
    for feeds in batches:
        inputs = []
        for n, value in feeds.items():
            inp = grpcclient.InferInput(n, list(value.shape), DATATYPES[_onnx_type(value)])
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        result = client.infer(name, inputs)
        rows = next(iter(feeds.values())).shape[0]
        for (out_name, datatype), expected in zip(outputs, reference.run(None, feeds), strict=True):
            check_raw_size(f"{name}/{out_name} batch {rows}", result.get_response(), out_name, datatype)
            got = result.as_numpy(out_name)
            assert got.dtype == expected.dtype, f"{name}/{out_name}: {got.dtype} instead of {expected.dtype}"
            assert got.shape == expected.shape, f"{name}/{out_name} batch {rows}"
            compare(f"{name}/{out_name} batch {rows}", got, expected)


def check_raw_size(what: str, response, out_name: str, datatype: str) -> None:
    """The output is there, in the model's datatype, with as many raw bytes as its shape and datatype need."""
    names = [o.name for o in response.outputs]
    assert out_name in names, f"{what}: no such output among {names}"
    index = names.index(out_name)
    out = response.outputs[index]
    assert out.datatype == datatype, f"{what}: datatype {out.datatype}, expected {datatype}"
    size = int(np.prod(list(out.shape))) * np.dtype(triton_to_np_dtype(datatype)).itemsize
    raw = len(response.raw_output_contents[index])
    assert raw == size, f"{what}: {raw} raw bytes for {datatype} {list(out.shape)}, expected {size}"


def _onnx_type(value: np.ndarray) -> int:
    return {np.dtype(v): k for k, v in corpus.NUMPY_TYPES.items()}[value.dtype]


def compare(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    """FP32 (and FP64) within 1e-5 relative, FP16 within its rounding, integers exactly; for score matrices the
    arg-max of every row must agree wherever onnxruntime's top two are not a near tie.

    The absolute tolerance scales with the tensor's largest value: a small output of a layer whose terms are
    large and cancel carries rounding of the size of those terms, whatever order the sums are taken in."""
    if np.issubdtype(expected.dtype, np.integer) or expected.dtype == np.bool_:
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    if expected.dtype == np.float16:
        rtol, atol, tie = 2e-3, 1e-3, 4e-3
    else:
        rtol, atol, tie = 1e-5, 1e-6, 1e-4
    atol *= max(1.0, float(np.abs(expected.astype(np.float64)).max(initial=0.0)))
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                               err_msg=what)
    if expected.ndim == 2 and expected.shape[1] > 1:
        top2 = np.sort(expected.astype(np.float64), axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > tie
        np.testing.assert_array_equal(got.argmax(1)[clear], expected.argmax(1)[clear], err_msg=f"{what}: arg-max")


def test_models_check_accepts_the_whole_corpus(repository, tmp_path):
    root, _ = repository
    good = tmp_path / "served"
    shutil.copytree(root, good, ignore=shutil.ignore_patterns(BROKEN))
    out = run_models_check(good)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "FAILED" not in text, text
    for name in SERVED:
        assert name in text


# ---------------------------------------------------------------------------------------------------------
# Refused models


def test_refused_model_does_not_stop_the_others(repository, gateway, client):
    root, _ = repository
    assert not client.is_model_ready(BROKEN)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=BROKEN, model_version="1")
        request.inputs.add(name="input", datatype="FP32", shape=[1, 2, 16])
        request.raw_input_contents.append(np.zeros(32, dtype=np.float32).tobytes())
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.ModelInfer(request, timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE, excinfo.value.details()
    assert "Conv" in excinfo.value.details()
    # The good models of the same repository serve.
    for name in ("torch_legacy_mlp_op17", "sk_logreg_multi"):
        assert client.is_model_ready(name)
        feeds = corpus.load_batches(root / name)[0]
        inputs = []
        for n, value in feeds.items():
            inp = grpcclient.InferInput(n, list(value.shape), "FP32")
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        assert client.infer(name, inputs).get_response().outputs


def refusal_output(refused_root: pathlib.Path, name: str, tmp_path: pathlib.Path) -> str:
    """`switchyard models` on a repository holding only `name`: must exit non-zero; its output."""
    shutil.copytree(refused_root / name, tmp_path / name)
    out = run_models_check(tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0, f"{name} was accepted:\n{text}"
    return text


def refused(kind: str) -> list[str]:
    return [case.name for case in corpus.REFUSED if case.kind == kind]


@pytest.mark.parametrize("name", refused("non_mlp"))
def test_non_mlp_graphs_are_refused_naming_node_and_operator(repository, tmp_path, name):
    _, refused = repository
    text = refusal_output(refused, name, tmp_path)
    node, op = REFUSED[name].refusal
    assert node in text, f"the refusal does not name node {node}:\n{text}"
    assert re.search(rf"\b{op}\b", text), f"the refusal does not name operator {op}:\n{text}"


def test_zipmap_is_refused_with_the_export_option(repository, tmp_path):
    _, refused = repository
    text = refusal_output(refused, "refuse_zipmap", tmp_path)
    assert "ZipMap" in text, text
    assert re.search(r"""['"]zipmap['"]\s*:\s*False""", text), f"the refusal does not say how to export:\n{text}"


def test_string_labels_are_refused(repository, tmp_path):
    _, refused = repository
    text = refusal_output(refused, "refuse_string_labels", tmp_path)
    assert "label" in text, text
    assert "string" in text.lower(), text


@pytest.mark.parametrize("name", refused("external"))
def test_unsafe_external_data_is_refused_naming_the_tensor(repository, tmp_path, name):
    _, refused = repository
    text = refusal_output(refused, name, tmp_path)
    assert "fc1.weight" in text, f"the refusal does not name the tensor:\n{text}"
    assert "root:" not in text  # nothing of /etc/passwd leaks into the message



def test_external_data_through_a_symlink_out_of_the_directory_is_refused(tmp_path):
    """A data file that is a symbolic link to a file outside the version's directory is refused, naming the
    tensor: a model file must never make the gateway read files it was not given."""
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    case = corpus.Case("linked", lambda: corpus.small_external_model(corpus.SEED + 1104), "symlinked data",
                       external_data=True)
    corpus.write_case(case, repo)
    data = repo / "linked" / "1" / "model.onnx.data"
    shutil.move(data, outside / "model.onnx.data")
    data.symlink_to(outside / "model.onnx.data")
    out = run_models_check(repo)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "fc1.weight" in text and "leaves the model's directory" in text, text
