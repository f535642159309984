"""Datatype checks at the RPC edge, against the bundled FP32 digits model: a tensor in another datatype, raw
contents whose byte count does not fit the datatype and shape, typed contents in the wrong field (FP16 has none),
and BYTES tensors are refused with INVALID_ARGUMENT naming the tensor, the expected and the received datatype or
size — over unary calls with tritonclient and grpcio and over the streaming RPC — and the gateway keeps serving."""

import json
import queue

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conftest import MODELS
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"], dtype=np.float32)


@pytest.fixture()
def client(gateway):
    c = grpcclient.InferenceServerClient(gateway.address)
    yield c
    c.close()


@pytest.fixture()
def stub(channel):
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def refused(stub, request):
    """The details of the INVALID_ARGUMENT that `request` gets."""
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.ModelInfer(request, timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT, excinfo.value
    return excinfo.value.details()


def request_with(datatype, shape, raw=None):
    request = service_pb2.ModelInferRequest(model_name="digits")
    tensor = request.inputs.add(name="pixels", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request, tensor


@pytest.mark.parametrize(
    "datatype, dtype",
    [("INT64", np.int64), ("FP16", np.float16), ("BF16", ml_dtypes.bfloat16), ("FP64", np.float64), ("UINT8", np.uint8),
     ("BOOL", np.bool_)],
)
def test_another_datatype_is_refused_naming_both(client, datatype, dtype):
    inp = grpcclient.InferInput("pixels", [2, 64], datatype)
    inp.set_data_from_numpy(np.zeros((2, 64), dtype))
    with pytest.raises(InferenceServerException) as excinfo:
        client.infer("digits", [inp])
    assert excinfo.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert f"input 'pixels': expected FP32 [-1, 64], got {datatype} [2, 64]" in excinfo.value.message()


def test_raw_byte_count_must_fit_datatype_and_shape(stub):
    # FP64 bytes sent as FP32: twice the bytes the shape needs.
    request, _ = request_with("FP32", [2, 64], PIXELS[:2].astype(np.float64).tobytes())
    assert "input 'pixels': expected 512 bytes of raw FP32 data for shape [2, 64], got 1024" in refused(stub, request)
    request, _ = request_with("FP32", [1, 64], PIXELS[:1].astype(np.float16).tobytes())
    assert "input 'pixels': expected 256 bytes of raw FP32 data for shape [1, 64], got 128" in refused(stub, request)


def test_typed_contents_must_be_the_datatypes_field(stub):
    request, tensor = request_with("FP32", [1, 64])
    tensor.contents.int64_contents.extend([1] * 64)
    assert "input 'pixels': FP32 data belongs in contents.fp32_contents, got int64_contents" in refused(stub, request)
    request, tensor = request_with("FP32", [1, 64])
    tensor.contents.fp32_contents.extend([0.5] * 63)
    assert "input 'pixels': expected 64 values in contents.fp32_contents for shape [1, 64], got 63" in refused(
        stub, request
    )


def test_fp16_in_a_typed_field_is_refused(stub):
    # The protocol has no typed field for FP16; against this FP32 model the datatype is what is refused first.
    request, tensor = request_with("FP16", [1, 64])
    tensor.contents.fp32_contents.extend(PIXELS[0].tolist())
    assert "input 'pixels': expected FP32 [-1, 64], got FP16 [1, 64]" in refused(stub, request)


def test_bytes_tensors_are_refused_by_name(stub):
    request, tensor = request_with("BYTES", [1, 64])
    tensor.contents.bytes_contents.extend([b"x"] * 64)
    assert "input 'pixels': expected FP32 [-1, 64], got BYTES [1, 64] (BYTES tensors are not supported)" in refused(
        stub, request
    )


def test_streaming_reports_the_same_refusal(stub):
    requests = queue.Queue()
    bad, _ = request_with("INT64", [1, 64], np.zeros((1, 64), np.int64).tobytes())
    good, _ = request_with("FP32", [1, 64], PIXELS[:1].tobytes())
    requests.put(bad)
    requests.put(good)
    requests.put(None)
    responses = list(stub.ModelStreamInfer(iter(requests.get, None), timeout=10))
    assert len(responses) == 2
    assert "input 'pixels': expected FP32 [-1, 64], got INT64 [1, 64]" in responses[0].error_message
    assert responses[1].error_message == ""
    output = responses[1].infer_response
    assert [o.datatype for o in output.outputs] == ["FP32", "FP32"]
    assert len(output.raw_output_contents[0]) == 10 * 4


def test_fp32_still_served_after_refusals(client):
    inp = grpcclient.InferInput("pixels", [3, 64], "FP32")
    inp.set_data_from_numpy(PIXELS[:3])
    result = client.infer("digits", [inp])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_metadata_and_config_report_the_models_datatypes(client):
    model = client.get_model_metadata("digits")
    assert [t.datatype for t in model.inputs] == ["FP32"]
    assert [t.datatype for t in model.outputs] == ["FP32", "FP32"]
    config = client.get_model_config("digits").config
    assert [i.data_type for i in config.input] == [11]  # TYPE_FP32
    assert [o.data_type for o in config.output] == [11, 11]
