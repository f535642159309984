"""HTTP/2 on the REST port: h2c with prior knowledge (httpx, curl, h2load) beside HTTP/1.1 on the same port, the same
answers as HTTP/1.1 (JSON and binary tensor data checked against onnxruntime, errors, the route header), many
streams at once on one connection, the HTTP/1.1 limits over HTTP/2 (413 before the body, 413 for a body that grows
past the limit, 429 when the process-wide request buffer is full, with hyper-h2 by hand), a client sending garbage after the preface losing
only its own connection, and an `Upgrade: h2c` request answered over HTTP/1.1 (RFC 9113 deprecates that upgrade)."""

import json
import re
import shutil
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import requests
from conftest import MODELS
from test_rest import raw_exchange

PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"], dtype=np.float32)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def rest_gateway(start_gateway):
    return start_gateway(rest=True)


@pytest.fixture()
def h2c(rest_gateway):
    with httpx.Client(base_url=rest_gateway.rest_url, http1=False, http2=True, timeout=30) as client:
        yield client


def reference(version, pixels):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": pixels})))


def test_metadata_and_json_inference_over_h2c(h2c):
    live = h2c.get("/v2/health/live")
    assert live.http_version == "HTTP/2" and live.json() == {"live": True}
    assert h2c.get("/v2/models/digits").json()["name"] == "digits"
    assert h2c.get("/v2/models/digits/versions/2/ready").json() == {"name": "digits", "ready": True}
    body = {"inputs": [{"name": "pixels", "shape": [3, 64], "datatype": "FP32", "data": PIXELS[:3].tolist()}]}
    answer = h2c.post("/v2/models/digits/versions/1/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.http_version == "HTTP/2"
    assert re.search(r"version=1", answer.headers["switchyard-route"]), answer.headers
    logits = next(o for o in answer.json()["outputs"] if o["name"] == "logits")
    np.testing.assert_allclose(np.asarray(logits["data"]).reshape(3, 10), reference("1", PIXELS[:3])["logits"],
                               rtol=1e-4, atol=1e-4)
    # A HEAD request gets the headers of the GET, and no body.
    head = h2c.head("/v2/models/digits")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(h2c.get("/v2/models/digits").content)


def test_binary_tensor_data_over_h2c(h2c):
    header = json.dumps({
        "inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "parameters": {"binary_data_size": 512}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    answer = h2c.post("/v2/models/digits/versions/2/infer", content=header + PIXELS[:2].tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    outputs = json.loads(answer.content[:length])["outputs"]
    assert [o["parameters"]["binary_data_size"] for o in outputs] == [80, 80]
    logits = np.frombuffer(answer.content[length:length + 80], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(logits, reference("2", PIXELS[:2])["logits"], rtol=1e-4, atol=1e-4)


def test_errors_over_h2c_keep_their_status_and_message(h2c):
    missing = h2c.post("/v2/models/nope/infer", json={"inputs": []})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    malformed = h2c.post("/v2/models/digits/infer", content=b'{"inputs": [')
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert h2c.get("/v2/models/digits/infer").status_code == 405
    # The connection is still good after the errors.
    assert h2c.get("/v2/health/ready").json() == {"ready": True}


def test_curl_and_h2load_speak_h2c_on_the_rest_port(rest_gateway, tmp_path):
    curl = shutil.which("curl")
    if curl:
        run = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                              f"{rest_gateway.rest_url}/v2/health/live"], capture_output=True, text=True, timeout=20)
        assert run.stdout == "200 2", (run.stdout, run.stderr)
        # `Upgrade: h2c` (curl --http2 on http://) is answered over HTTP/1.1, as RFC 9113 section 3.1 allows.
        run = subprocess.run([curl, "-s", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                              f"{rest_gateway.rest_url}/v2/health/live"], capture_output=True, text=True, timeout=20)
        assert run.stdout == "200 1.1", (run.stdout, run.stderr)
    h2load = shutil.which("h2load")
    if h2load is None:
        pytest.skip("h2load (Debian package nghttp2-client) is not installed; scripts/bootstrap.sh --test installs it")
    body = tmp_path / "infer.json"
    body.write_text(json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                                            "data": PIXELS[0].tolist()}]}))
    # 2 connections, 32 streams open on each at once.
    run = subprocess.run([h2load, "-n", "2000", "-c", "2", "-m", "32", "-d", str(body), "-H", "content-type: application/json",
                          f"{rest_gateway.rest_url}/v2/models/digits/infer"], capture_output=True, text=True, timeout=120)
    assert "2000 succeeded, 0 failed, 0 errored" in run.stdout, run.stdout + run.stderr
    assert "status codes: 2000 2xx" in run.stdout, run.stdout


@pytest.fixture(scope="module")
def tight_rest_gateway(start_gateway, tmp_path_factory):
    config = tmp_path_factory.mktemp("rest-h2-limits") / "switchyard.yaml"
    config.write_text("limits:\n  max_request_bytes: 65536\n  max_buffered_request_bytes: 131072\n")
    return start_gateway("--config", str(config), rest=True)


def test_http1_limits_hold_over_h2c(tight_rest_gateway):
    with httpx.Client(base_url=tight_rest_gateway.rest_url, http1=False, http2=True, timeout=30) as client:
        # Declared too large: refused from the headers.
        big = client.post("/v2/models/digits/infer", content=b"x" * 100_000)
        assert big.status_code == 413 and "65536 bytes (limits.max_request_bytes)" in big.json()["error"]

        # Growing too large without a declared length.
        def chunks():
            for _ in range(10):
                yield b"y" * 10_000

        grown = client.post("/v2/models/digits/infer", content=chunks())
        assert grown.status_code == 413 and "limits.max_request_bytes" in grown.json()["error"]
        # The connection carries on.
        assert client.get("/v2/health/live").json() == {"live": True}


def test_request_buffer_budget_holds_over_h2c(tight_rest_gateway):
    """Three streams declaring 60 000-byte bodies they never finish: the third does not fit the 131 072 bytes of
    max_buffered_request_bytes and gets 429 at once, while the first two keep waiting for their bodies."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    with socket.create_connection(("127.0.0.1", tight_rest_gateway.rest_port), timeout=5) as s:
        for stream in (1, 3, 5):
            connection.send_headers(stream, [(":method", "POST"), (":path", "/v2/models/digits/infer"),
                                             (":scheme", "http"), (":authority", "localhost"),
                                             ("content-length", "60000")])
        s.sendall(connection.data_to_send())
        statuses = {}
        body = b""
        while 5 not in statuses or not body:
            data = s.recv(65536)
            assert data, "connection closed"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[event.stream_id] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
            s.sendall(connection.data_to_send())
        assert statuses == {5: b"429"}, statuses
        assert b"limits.max_buffered_request_bytes" in body, body


def test_a_refused_body_is_read_a_window_more_then_reset(tight_rest_gateway):
    """A request refused from its headers (413) while its client goes on sending: the answer goes out at once, up to a
    stream window (1 MiB) more of the body is read and dropped, so that clients that finish writing before they read
    (httpx) get the 413, and a client still sending past that gets RST_STREAM NO_ERROR (RFC 9113 section 8.1)."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    with socket.create_connection(("127.0.0.1", tight_rest_gateway.rest_port), timeout=5) as s:
        connection.send_headers(1, [(":method", "POST"), (":path", "/v2/models/digits/infer"), (":scheme", "http"),
                                    (":authority", "localhost"), ("content-length", str(8 << 20))])
        s.sendall(connection.data_to_send())
        sent, status, reset = 0, None, None
        deadline = time.time() + 20
        while reset is None and time.time() < deadline and sent < (8 << 20):
            window = min(connection.local_flow_control_window(1), connection.max_outbound_frame_size)
            if window > 0:
                connection.send_data(1, b"z" * window)
                sent += window
                s.sendall(connection.data_to_send())
            s.settimeout(0.01 if window > 0 else 1)
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            assert data, "connection closed"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.StreamReset):
                    reset = event.error_code
            s.sendall(connection.data_to_send())
        assert status == b"413", status
        assert reset == 0, (reset, sent)  # NO_ERROR
        assert (1 << 20) < sent < (4 << 20), sent


def test_preface_arriving_a_byte_at_a_time(rest_gateway):
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    connection.send_headers(1, [(":method", "GET"), (":path", "/v2/health/live"), (":scheme", "http"),
                                (":authority", "localhost")], end_stream=True)
    with socket.create_connection(("127.0.0.1", rest_gateway.rest_port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = connection.data_to_send()
        for i in range(len(PREFACE)):
            s.sendall(data[i:i + 1])
            time.sleep(0.002)
        s.sendall(data[len(PREFACE):])
        body = b""
        while not body.endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            for event in connection.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
            s.sendall(connection.data_to_send())
        assert json.loads(body) == {"live": True}


def test_garbage_after_the_preface_ends_only_that_connection(rest_gateway):
    with requests.Session() as good:  # a kept-alive HTTP/1.1 connection on the same port
        url = f"{rest_gateway.rest_url}/v2/health/live"
        assert good.get(url).status_code == 200
        answer = raw_exchange(rest_gateway.rest_port,
                              PREFACE + b"\x00\x00\x04\x99\x00\x00\x00\x00\x01garbage-frames" * 4)
        # Our SETTINGS, then GOAWAY (type 7) with a protocol error, then the close.
        assert answer[3] == 0x04 and b"\x07" in answer, answer
        # A preface cut short and then an HTTP/1.1 request line is just a malformed HTTP/1.1 request.
        with socket.create_connection(("127.0.0.1", rest_gateway.rest_port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/1.1\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 4")
        assert good.get(url).status_code == 200
    with httpx.Client(base_url=rest_gateway.rest_url, http1=False, http2=True) as client:
        assert client.get("/v2/health/ready").json() == {"ready": True}
