"""NVIDIA's tritonclient against the gateway on the demo repository: metadata, config, inference with
raw and typed tensors, streaming, statistics, and every error case with its status and message."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from conftest import MODELS
from faults_support import assert_serving_digits
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)
LABELS = np.asarray(SAMPLES["labels"])


@pytest.fixture()
def client(gateway):
    c = grpcclient.InferenceServerClient(gateway.address)
    yield c
    c.close()


def reference(version, pixels):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": pixels})))


def infer(client, pixels, version="", outputs=None, request_id=""):
    inp = grpcclient.InferInput("pixels", list(pixels.shape), "FP32")
    inp.set_data_from_numpy(pixels)
    requested = [grpcclient.InferRequestedOutput(name) for name in outputs] if outputs else None
    return client.infer("digits", [inp], model_version=version, outputs=requested, request_id=request_id)


def expect_error(status, *fragments):
    def check(excinfo):
        assert excinfo.value.status() == f"StatusCode.{status}", excinfo.value
        for fragment in fragments:
            assert fragment in excinfo.value.message(), excinfo.value.message()

    return check


def test_server_and_model_metadata(client):
    assert_serving_digits(client)
    meta = client.get_server_metadata()
    assert meta.name == "switchyard"
    assert "statistics" in meta.extensions
    model = client.get_model_metadata("digits")
    assert list(model.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("pixels", "FP32", [-1, 64])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("logits", "FP32", [-1, 10]),
        ("probabilities", "FP32", [-1, 10]),
    ]


def test_model_config(client):
    config = client.get_model_config("digits").config
    assert config.name == "digits"
    assert config.max_batch_size == 64
    assert [(i.name, list(i.dims)) for i in config.input] == [("pixels", [64])]
    assert config.input[0].data_type == 11  # TYPE_FP32
    assert [o.name for o in config.output] == ["logits", "probabilities"]
    assert config.HasField("dynamic_batching")


@pytest.mark.parametrize("version", ["1", "2"])
def test_infer_matches_onnxruntime_and_classifies(client, version):
    result = infer(client, PIXELS, version=version, request_id="req-42")
    response = result.get_response()
    assert response.model_name == "digits"
    assert response.model_version == version
    assert response.id == "req-42"
    expected = reference(version, PIXELS)
    for name in ("logits", "probabilities"):
        got = result.as_numpy(name)
        assert got.shape == (len(PIXELS), 10)
        np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-5)
    accuracy = (result.as_numpy("probabilities").argmax(axis=1) == LABELS).mean()
    assert accuracy >= 0.85


def test_default_version_is_the_latest(client):
    assert infer(client, PIXELS[:1]).get_response().model_version == "2"


def test_only_requested_outputs_are_returned(client):
    result = infer(client, PIXELS[:3], outputs=["probabilities"])
    response = result.get_response()
    assert [o.name for o in response.outputs] == ["probabilities"]
    assert len(response.raw_output_contents) == 1
    assert result.as_numpy("logits") is None


def test_typed_contents_are_accepted(gateway):
    import grpc

    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits", model_version="1")
        tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[2, 64])
        tensor.contents.fp32_contents.extend(PIXELS[:2].ravel().tolist())
        response = stub.ModelInfer(request)
    logits = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(logits, reference("1", PIXELS[:2])["logits"], rtol=1e-5, atol=1e-5)


def test_unknown_parameters_are_accepted(gateway):
    import grpc

    # perf_analyzer always sends triton_enable_empty_final_response; tritonclient refuses to send it itself.
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits")
        request.parameters["triton_enable_empty_final_response"].bool_param = True
        request.parameters["custom"].string_param = "x"
        tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
        tensor.parameters["anything"].int64_param = 3
        request.raw_input_contents.append(PIXELS[:1].tobytes())
        response = stub.ModelInfer(request)
    assert len(response.raw_output_contents) == 2


def test_priority_and_timeout_parameters(client):
    inp = grpcclient.InferInput("pixels", [1, 64], "FP32")
    inp.set_data_from_numpy(PIXELS[:1])
    result = client.infer("digits", [inp], priority=1, timeout=5_000_000)
    assert result.as_numpy("probabilities").shape == (1, 10)


def test_streaming_infer(client):
    import queue

    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for index in range(4):
            inp = grpcclient.InferInput("pixels", [1, 64], "FP32")
            inp.set_data_from_numpy(PIXELS[index : index + 1])
            client.async_stream_infer("digits", [inp], request_id=str(index))
        bad = grpcclient.InferInput("pixels", [1, 63], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 63), dtype=np.float32))
        client.async_stream_infer("digits", [bad], request_id="bad")
        seen = {}
        errors = []
        for _ in range(5):
            result, error = results.get(timeout=10)
            if error is not None:
                errors.append(str(error))
            else:
                seen[result.get_response().id] = result.as_numpy("probabilities")
    finally:
        client.stop_stream()
    assert sorted(seen) == ["0", "1", "2", "3"]
    assert len(errors) == 1 and "expected FP32 [-1, 64], got FP32 [1, 63]" in errors[0]


def test_statistics(client):
    infer(client, PIXELS[:2], version="1")
    stats = client.get_inference_statistics("digits", "1")
    entry = stats.model_stats[0]
    assert entry.name == "digits" and entry.version == "1"
    assert entry.inference_count >= 2
    assert entry.inference_stats.success.count >= 1
    assert entry.execution_count >= 1


@pytest.mark.parametrize(
    "call, status, fragments",
    [
        (lambda c: c.infer("nope", []), "NOT_FOUND", ["unknown model 'nope'", "digits"]),
        (lambda c: infer(c, PIXELS[:1], version="7"), "NOT_FOUND", ["no version '7'", "1, 2"]),
        (lambda c: c.get_model_metadata("nope"), "NOT_FOUND", ["unknown model 'nope'"]),
        (lambda c: c.get_model_config("nope"), "NOT_FOUND", ["unknown model 'nope'"]),
    ],
)
def test_not_found(client, call, status, fragments):
    with pytest.raises(InferenceServerException) as excinfo:
        call(client)
    expect_error(status, *fragments)(excinfo)


def make_input(name, shape, datatype, array):
    inp = grpcclient.InferInput(name, shape, datatype)
    inp.set_data_from_numpy(array)
    return inp


@pytest.mark.parametrize(
    "inputs, outputs, fragments",
    [
        (
            [make_input("pixels", [2, 63], "FP32", np.zeros((2, 63), np.float32))],
            None,
            ["input 'pixels': expected FP32 [-1, 64], got FP32 [2, 63]"],
        ),
        (
            [make_input("pixels", [2, 64], "FP64", np.zeros((2, 64), np.float64))],
            None,
            ["input 'pixels': expected FP32 [-1, 64], got FP64 [2, 64]"],
        ),
        (
            [make_input("pixels", [2, 64], "INT32", np.zeros((2, 64), np.int32))],
            None,
            ["expected FP32 [-1, 64], got INT32 [2, 64]"],
        ),
        (
            [make_input("image", [1, 64], "FP32", np.zeros((1, 64), np.float32))],
            None,
            ["unexpected input 'image'", "pixels"],
        ),
        (
            [make_input("pixels", [65, 64], "FP32", np.zeros((65, 64), np.float32))],
            None,
            ["batch of 65 rows exceeds", "max_batch_size 64"],
        ),
        (
            [make_input("pixels", [1, 64], "FP32", np.zeros((1, 64), np.float32))],
            ["scores"],
            ["unknown output 'scores'", "logits, probabilities"],
        ),
        ([], None, ["missing input 'pixels'"]),
    ],
)
def test_invalid_argument(client, inputs, outputs, fragments):
    requested = [grpcclient.InferRequestedOutput(n) for n in outputs] if outputs else None
    with pytest.raises(InferenceServerException) as excinfo:
        client.infer("digits", inputs, outputs=requested)
    expect_error("INVALID_ARGUMENT", *fragments)(excinfo)


def raw_call(gateway, method, payload):
    import grpc

    with grpc.insecure_channel(gateway.address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return call(payload, timeout=10)


def test_wrong_byte_count_and_overflowing_shapes(gateway):
    import grpc

    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits")
        request.inputs.add(name="pixels", datatype="FP32", shape=[2, 64])
        request.raw_input_contents.append(b"\0" * 508)
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.ModelInfer(request)
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected 512 bytes of raw FP32 data for shape [2, 64], got 508" in excinfo.value.details()

        request = service_pb2.ModelInferRequest(model_name="digits")
        request.inputs.add(name="pixels", datatype="FP32", shape=[2**62, 64])
        request.raw_input_contents.append(b"")
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.ModelInfer(request)
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input 'pixels'" in excinfo.value.details()


def test_malformed_protobuf_fails_only_that_call(gateway, client):
    import grpc

    with pytest.raises(grpc.RpcError) as excinfo:
        raw_call(gateway, "/inference.GRPCInferenceService/ModelInfer", b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInferRequest" in excinfo.value.details()
    assert infer(client, PIXELS[:1]).as_numpy("probabilities").shape == (1, 10)


def test_unimplemented_method(gateway):
    import grpc

    with pytest.raises(grpc.RpcError) as excinfo:
        raw_call(gateway, "/inference.GRPCInferenceService/NoSuchMethod", b"")
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_health_check(gateway):
    import grpc

    assert raw_call(gateway, "/grpc.health.v1.Health/Check", b"") == b"\x08\x01"  # SERVING
    assert raw_call(gateway, "/grpc.health.v1.Health/Check", b"\x0a\x06digits") == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as excinfo:
        raw_call(gateway, "/grpc.health.v1.Health/Check", b"\x0a\x04nope")
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
