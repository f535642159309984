"""The v2 REST listener with stock clients: tritonclient.http (metadata, config, statistics, infer with JSON and with
the binary tensor data extension, every error case), plain requests/curl health checks, the route header, and
perf_analyzer over HTTP (its default protocol)."""

import csv
import json
import re
import shutil
import socket
import subprocess
import time

import numpy as np
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as httpclient
from conftest import MODELS
from faults_support import assert_serving_digits
from tritonclient.utils import InferenceServerException

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)


@pytest.fixture(scope="module")
def rest_gateway(start_gateway):
    return start_gateway(rest=True)


@pytest.fixture()
def client(rest_gateway):
    c = httpclient.InferenceServerClient(f"127.0.0.1:{rest_gateway.rest_port}")
    yield c
    c.close()


def reference(version, pixels):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": pixels})))


def test_health_with_requests_and_curl(rest_gateway):
    live = requests.get(f"{rest_gateway.rest_url}/v2/health/live")
    assert live.status_code == 200 and live.json() == {"live": True}  # the body KServe's client reads
    ready = requests.get(f"{rest_gateway.rest_url}/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    model = requests.get(f"{rest_gateway.rest_url}/v2/models/digits/ready")
    assert model.status_code == 200 and model.json() == {"name": "digits", "ready": True}
    curl = shutil.which("curl")
    if curl:
        run = subprocess.run([curl, "-sf", f"{rest_gateway.rest_url}/v2/health/ready"], capture_output=True, timeout=10)
        assert run.returncode == 0, run.stderr
        run = subprocess.run([curl, "-s", f"{rest_gateway.rest_url}/v2"], capture_output=True, text=True, timeout=10)
        assert json.loads(run.stdout)["name"] == "switchyard"


def test_server_and_model_metadata(client):
    assert_serving_digits(client)
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert meta["name"] == "switchyard"
    assert "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("digits")
    assert model["versions"] == ["1", "2"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in model["inputs"]] == [("pixels", "FP32", [-1, 64])]
    assert [t["name"] for t in model["outputs"]] == ["logits", "probabilities"]
    assert client.get_model_metadata("digits", "1")["versions"] == ["1"]


def test_model_config_and_statistics(client):
    config = client.get_model_config("digits")
    assert config["name"] == "digits"
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "pixels", "data_type": "TYPE_FP32", "dims": [64]}]
    assert "dynamic_batching" in config
    before = client.get_inference_statistics("digits", "2")["model_stats"][0]["inference_stats"]["success"]["count"]
    inp = httpclient.InferInput("pixels", [1, 64], "FP32")
    inp.set_data_from_numpy(PIXELS[:1])
    client.infer("digits", [inp], model_version="2")
    # The worker counts a call just after it answers: give the counter a moment.
    deadline = time.time() + 5
    while True:
        stats = client.get_inference_statistics("digits", "2")["model_stats"][0]
        if stats["inference_stats"]["success"]["count"] > before or time.time() > deadline:
            break
        time.sleep(0.01)
    assert stats["inference_stats"]["success"]["count"] == before + 1
    assert stats["name"] == "digits" and stats["version"] == "2"


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("version", ["1", "2"])
def test_infer_matches_onnxruntime(client, version, binary):
    inp = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
    inp.set_data_from_numpy(PIXELS, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("logits", "probabilities")]
    result = client.infer("digits", [inp], model_version=version, outputs=outputs, request_id="rest-7")
    response = result.get_response()
    assert response["model_name"] == "digits"
    assert response["model_version"] == version
    assert response["id"] == "rest-7"
    expected = reference(version, PIXELS)
    for name in ("logits", "probabilities"):
        np.testing.assert_allclose(result.as_numpy(name), expected[name], rtol=1e-4, atol=1e-4)


def test_infer_with_nested_json_data_and_default_outputs(rest_gateway):
    body = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": PIXELS[:2].tolist()}]}
    response = requests.post(f"{rest_gateway.rest_url}/v2/models/digits/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "switchyard-route" in response.headers
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["logits"]["shape"] == [2, 10]
    expected = reference(response.json()["model_version"], PIXELS[:2])
    np.testing.assert_allclose(np.asarray(outputs["logits"]["data"]).reshape(2, 10), expected["logits"], rtol=1e-4, atol=1e-4)


def test_large_json_body_decoded_off_the_loop(rest_gateway):
    rows = np.tile(PIXELS, (64 // len(PIXELS) + 1, 1))[:64]
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [64, 64], "datatype": "FP32", "data": rows.tolist()}]},
                      indent=8).encode()
    assert len(body) > 64 << 10  # RESTService.offloadBytes
    response = requests.post(f"{rest_gateway.rest_url}/v2/models/digits/versions/2/infer", data=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    np.testing.assert_allclose(np.asarray(outputs["probabilities"]["data"]).reshape(64, 10),
                               reference("2", rows)["probabilities"], rtol=1e-4, atol=1e-4)
    bad = json.dumps({"inputs": [{"name": "pixels", "shape": [64, 64], "datatype": "FP32", "data": rows.tolist()[1:]}]},
                     indent=8).encode()
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "expected 4096 values", "got 4032", data=bad)


def test_binary_request_by_hand_reports_header_length(rest_gateway):
    header = json.dumps({
        "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    response = requests.post(
        f"{rest_gateway.rest_url}/v2/models/digits/versions/1/infer",
        data=header + PIXELS[:1].tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in answer["outputs"]]
    assert sizes == [40, 40]
    assert len(response.content) == length + 80
    logits = np.frombuffer(response.content[length:length + 40], dtype=np.float32)
    np.testing.assert_allclose(logits, reference("1", PIXELS[:1])["logits"][0], rtol=1e-4, atol=1e-4)


def rest_error(rest_gateway, path, status, *fragments, **kwargs):
    response = requests.post(f"{rest_gateway.rest_url}{path}", **kwargs)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_error_cases_name_what_was_wrong(rest_gateway):
    good = {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    rest_error(rest_gateway, "/v2/models/nope/infer", 404, "nope", json={"inputs": [good]})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "expected 64 values", "got 63",
               json={"inputs": [dict(good, data=[0.0] * 63)]})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "unknown datatype 'FP33'",
               json={"inputs": [dict(good, datatype="FP33")]})
    # A huge shape claimed by a tiny body of non-numeric data is refused by its count, not by running out of memory.
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "expected 2147483647 values", "got 1",
               json={"inputs": [dict(good, shape=[2147483647], datatype="BOOL", data=[True])]})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "malformed JSON", data=b'{"inputs": [')
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "missing field 'inputs'", json={})
    header = json.dumps({"inputs": [{k: v for k, v in good.items() if k != "data"} | {"parameters": {"binary_data_size": 256}}]}).encode()
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "binary_data_size 256 overruns",
               data=header + b"\0" * 100, headers={"Inference-Header-Content-Length": str(len(header))})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "'inputs[0].parameters.binary_data_size'", "a number",
               json={"inputs": [dict(good, parameters={"binary_data_size": "lots"})]})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "data[3] is a string; expected a FP32 value",
               json={"inputs": [dict(good, data=[0.0] * 3 + ["x"] + [0.0] * 60)]})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "Inference-Header-Content-Length 9999 exceeds",
               data=header, headers={"Inference-Header-Content-Length": "9999"})
    rest_error(rest_gateway, "/v2/models/digits/infer", 400, "input 'pixels'", "[1, 32]",
               json={"inputs": [dict(good, shape=[1, 32], data=[0.0] * 32)]})
    response = requests.get(f"{rest_gateway.rest_url}/v2/models/digits/infer")
    assert response.status_code == 405
    assert requests.get(f"{rest_gateway.rest_url}/v3").status_code == 404


def test_request_field_errors_name_the_field_and_the_byte(rest_gateway):
    good = {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    infer = "/v2/models/digits/infer"
    rest_error(rest_gateway, infer, 400, "malformed JSON in inference request:", "at byte 12", data=b'{"inputs": [')
    rest_error(rest_gateway, infer, 400, "malformed JSON in inference request:", "at byte 16",
               data=b'{"inputs": []} x')
    rest_error(rest_gateway, infer, 400, "field 'inputs[0].shape' has the wrong type; expected an array of integers",
               json={"inputs": [dict(good, shape="1x64")]})
    rest_error(rest_gateway, infer, 400, "field 'inputs[0].shape[1]' is null; expected a number",
               json={"inputs": [dict(good, shape=[1, None])]})
    rest_error(rest_gateway, infer, 400, "missing field 'name' in 'inputs[0]'",
               json={"inputs": [{k: v for k, v in good.items() if k != "name"}]})
    rest_error(rest_gateway, infer, 400, "field 'inputs' is null; expected an array", json={"inputs": None})
    rest_error(rest_gateway, infer, 400, "field the top level has the wrong type; expected an object", json=[good])
    rest_error(rest_gateway, infer, 400, "field 'outputs[0].parameters.binary_data' has the wrong type; "
               "expected a boolean", json={"inputs": [good], "outputs": [{"name": "logits",
                                                                          "parameters": {"binary_data": 1}}]})


def test_tritonclient_errors_raise_with_the_message(client):
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")
    inp = httpclient.InferInput("pixels", [1, 64], "INT32")
    inp.set_data_from_numpy(np.zeros((1, 64), dtype=np.int32))
    with pytest.raises(InferenceServerException, match="input 'pixels': expected"):
        client.infer("digits", [inp])


def test_pipelined_requests_answer_in_order(rest_gateway):
    with socket.create_connection(("127.0.0.1", rest_gateway.rest_port), timeout=10) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\n\r\nGET /v2/models/nope HTTP/1.1\r\n\r\nGET /v2 HTTP/1.1\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [200, 404, 200]


def test_port_in_use_is_a_clear_error(tmp_path):
    from conftest import binary, free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        run = subprocess.run(
            [binary(), "serve", "--model-repository", str(MODELS), "--listen", f"127.0.0.1:{free_port()}",
             "--admin-listen", f"127.0.0.1:{free_port()}", "--rest-listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )
    assert run.returncode != 0
    assert f"rest_listen: cannot bind 127.0.0.1:{port}" in run.stdout + run.stderr


@pytest.mark.parametrize("binary", [False, True])
def test_perf_analyzer_over_http(rest_gateway, tmp_path, binary):
    path = shutil.which("perf_analyzer")
    if path is None:
        pytest.skip("perf_analyzer is not installed; scripts/bootstrap.sh --test installs it")
    out = tmp_path / "perf.csv"
    run = subprocess.run(
        [path, "-m", "digits", "-u", f"127.0.0.1:{rest_gateway.rest_port}", "-b", "1", "--concurrency-range", "2",
         "--measurement-interval", "1500", "--stability-percentage", "100", "-f", str(out),
         *([] if binary else ["--input-tensor-format", "json", "--output-tensor-format", "json"])],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows and float(rows[0]["Inferences/Second"]) > 0, run.stdout


@pytest.fixture(scope="module")
def tight_rest_gateway(start_gateway, tmp_path_factory):
    config = tmp_path_factory.mktemp("rest-limits") / "switchyard.yaml"
    config.write_text("limits:\n  header_timeout_seconds: 0.5\n  max_request_bytes: 65536\n  max_header_list_bytes: 4096\n")
    return start_gateway("--config", str(config), rest=True)


def raw_exchange(port, payload, wait=5.0):
    """Sends raw bytes and reads until the server closes (or `wait` passes); returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(payload)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data


def test_hostile_http1_peers_are_refused_on_their_own_connection(tight_rest_gateway):
    port = tight_rest_gateway.rest_port
    good = requests.Session()
    url = f"{tight_rest_gateway.rest_url}/v2/health/live"
    assert good.get(url).status_code == 200
    # Request smuggling: Content-Length and Transfer-Encoding together.
    smuggled = raw_exchange(port, b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 5\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2 HTTP/1.1\r\n\r\n")
    assert smuggled.startswith(b"HTTP/1.1 400 "), smuggled
    assert b"Content-Length and Transfer-Encoding" in smuggled
    assert smuggled.count(b"HTTP/1.1 ") == 1  # the smuggled request is never answered
    # Huge headers.
    huge = raw_exchange(port, b"GET /v2 HTTP/1.1\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 431 ") and b"limits.max_header_list_bytes" in huge
    # An oversized body is refused before it is sent.
    big = raw_exchange(port, b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 413 ") and b"65536 bytes (limits.max_request_bytes)" in big
    # Slowloris: headers that never finish are cut off by the header timeout.
    started = time.time()
    slow = raw_exchange(port, b"GET /v2 HTTP/1.1\r\nX-Slow: ", wait=10)
    assert slow.startswith(b"HTTP/1.1 408 ") and b"limits.header_timeout_seconds" in slow
    assert time.time() - started < 5
    # The well-behaved client's kept-alive connection was never disturbed.
    assert good.get(url).status_code == 200


DATATYPE_MODELS = ["int64_features", "fp16_mlp"]


@pytest.fixture(scope="module")
def datatype_gateway(start_gateway, tmp_path_factory):
    from exporter_corpus import SERVED, write_repository

    repo = tmp_path_factory.mktemp("rest-datatypes")
    write_repository(repo, [case for case in SERVED if case.name in DATATYPE_MODELS])
    return start_gateway(repository=repo, rest=True)


@pytest.mark.parametrize("model", DATATYPE_MODELS)
def test_declared_datatypes_over_rest_match_grpc(datatype_gateway, model):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import triton_to_np_dtype

    rest = httpclient.InferenceServerClient(f"127.0.0.1:{datatype_gateway.rest_port}")
    grpc_client = grpcclient.InferenceServerClient(datatype_gateway.address)
    meta = rest.get_model_metadata(model)
    rng = np.random.default_rng(7)
    inputs = {}
    for tensor in meta["inputs"]:
        shape = [3] + [d for d in tensor["shape"][1:]]
        dtype = triton_to_np_dtype(tensor["datatype"])
        values = rng.integers(-5, 5, size=shape) if np.issubdtype(dtype, np.integer) else rng.normal(size=shape)
        inputs[tensor["name"]] = (tensor["datatype"], values.astype(dtype))

    def call(module, client, binary=None):
        tensors = []
        for name, (datatype, values) in inputs.items():
            tensor = module.InferInput(name, list(values.shape), datatype)
            if binary is None:
                tensor.set_data_from_numpy(values)
            else:
                tensor.set_data_from_numpy(values, binary_data=binary)
            tensors.append(tensor)
        result = client.infer(model, tensors)
        return {t["name"]: result.as_numpy(t["name"]) for t in meta["outputs"]}

    expected = call(grpcclient, grpc_client)
    for binary in (False, True):
        got = call(httpclient, rest, binary)
        for name, values in expected.items():
            assert got[name].dtype == values.dtype, name
            np.testing.assert_array_equal(got[name], values, err_msg=f"{model} {name} binary={binary}")
    rest.close()
    grpc_client.close()
