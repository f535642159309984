"""Helpers for the fault-injection tests and others: broken model repositories, MLPs written with onnx.helper, the
admin API, waits, gRPC calls that report their status instead of raising, Prometheus scrapes, and the readiness checks
a Triton client makes of the demo server."""

import json
import pathlib
import shutil
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import onnx
from conftest import MODELS
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2

PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"], dtype=np.float32)


def copy_digits(root: pathlib.Path, name: str = "digits") -> pathlib.Path:
    """A repository under `root` holding a copy of the demo `digits` model; returns the repository path."""
    repository = root / "models"
    shutil.copytree(MODELS / "digits", repository / name)
    return repository


def write_mlp(path: pathlib.Path, sizes, seed: int, input_name="pixels", output_name="logits"):
    """A Gemm+Relu MLP with fixed-seed weights and a softmax output `probabilities`, like the demo models."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    previous = input_name
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        out = output_name if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out]))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            previous = f"r{i}"
    nodes.append(helper.make_node("Softmax", [output_name], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", sizes[-1]]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def admin(gateway, method, path, body=None, token=None, raw=None, headers=None):
    """One admin API call: (status, decoded JSON answer, or {"raw": text} for non-JSON answers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(gateway.admin_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, {"raw": payload.decode(errors="replace")}


def wait_admin(gateway, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if admin(gateway, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"admin API did not answer:\n{gateway.output()}")


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_value(predicate, timeout=20.0, interval=0.1):
    """The first truthy value `predicate()` returns within `timeout` seconds; an AssertionError when none is."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def assert_serving_digits(client):
    """Through a Triton client (tritonclient.grpc or tritonclient.http): the server is live and ready, and so are the
    demo model `digits` and its version 1, but not a version 99 it does not have."""
    assert client.is_server_live(), "server not live"
    assert client.is_server_ready(), "server not ready"
    assert client.is_model_ready("digits"), "digits not ready"
    assert client.is_model_ready("digits", "1"), "digits version 1 not ready"
    assert not client.is_model_ready("digits", "99"), "digits version 99 ready"


def metrics(gateway):
    """{(name, frozenset(labels)): value} of one /metrics scrape."""
    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples, name, **labels):
    """The sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, found), value in samples.items() if n == name and wanted <= found)


def infer_request(pixels, model="digits", version="", request_id=""):
    req = service_pb2.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    req.inputs.add(name="pixels", datatype="FP32", shape=list(pixels.shape))
    req.raw_input_contents.append(np.ascontiguousarray(pixels, dtype=np.float32).tobytes())
    return req


def call(stub, req, timeout=30):
    """(grpc code, details, response, trailers); never raises for a gRPC status."""
    try:
        response, rpc = stub.ModelInfer.with_call(req, timeout=timeout)
        return grpc.StatusCode.OK, "", response, dict(rpc.trailing_metadata() or ())
    except grpc.RpcError as error:
        return error.code(), error.details(), None, dict(error.trailing_metadata() or ())


def output(response, name, shape):
    index = [o.name for o in response.outputs].index(name)
    return np.frombuffer(response.raw_output_contents[index], dtype=np.float32).reshape(shape)
