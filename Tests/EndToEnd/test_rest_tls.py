"""TLS on the REST port with the gRPC port's `tls:` settings: certificates made at test time by the openssl CLI,
requests, curl and tritonclient.http over https (JSON and binary tensor data, checked against onnxruntime), ALPN
"http/1.1" or "h2" (httpx and curl over HTTP/2), keep-alive with bodies larger than one TLS record, mutual TLS (a client without a certificate is
refused, the gateway keeps serving), and a cleartext client getting no HTTP answer from the TLS port."""

import json
import shutil
import socket
import ssl
import subprocess

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import requests
import test_tls
import tritonclient.http as httpclient
from conftest import MODELS
from tritonclient.utils import InferenceServerException

# The certificates made by the openssl CLI, the same fixture as the gRPC port's TLS tests.
pki = test_tls.pki
PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"], dtype=np.float32)


@pytest.fixture(scope="module")
def tls_gateway(start_gateway, pki):
    return start_gateway("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                         tls=True, rest=True)


@pytest.fixture(scope="module")
def mtls_gateway(start_gateway, pki):
    return start_gateway("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                         "--tls-client-ca", str(pki / "ca.pem"), tls=True, rest=True)


def https(gw, path):
    return f"https://localhost:{gw.rest_port}{path}"


def reference(pixels):
    session = ort.InferenceSession(str(MODELS / "digits" / "2" / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": pixels})))


def test_requests_and_curl_over_https(tls_gateway, pki):
    ca = str(pki / "ca.pem")
    with requests.Session() as session:  # one kept-alive TLS connection for every call
        assert session.get(https(tls_gateway, "/v2/health/ready"), verify=ca).json() == {"ready": True}
        assert session.get(https(tls_gateway, "/v2/models/digits"), verify=ca).json()["name"] == "digits"
        body = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": PIXELS[:2].tolist()}]}
        answer = session.post(https(tls_gateway, "/v2/models/digits/versions/2/infer"), json=body, verify=ca)
        assert answer.status_code == 200, answer.text
        logits = next(o for o in answer.json()["outputs"] if o["name"] == "logits")
        np.testing.assert_allclose(np.asarray(logits["data"]).reshape(2, 10), reference(PIXELS[:2])["logits"],
                                   rtol=1e-4, atol=1e-4)
        # A request and an answer of many TLS records (16 KiB each): a 200 KB id is echoed back.
        request_id = "x" * 200_000
        answer = session.post(https(tls_gateway, "/v2/models/digits/versions/2/infer"),
                              json={**body, "id": request_id}, verify=ca)
        assert answer.status_code == 200 and answer.json()["id"] == request_id
        # Errors keep their status and message under TLS.
        bad = session.post(https(tls_gateway, "/v2/models/digits/infer"), data=b"{", verify=ca)
        assert bad.status_code == 400 and "error" in bad.json()
    curl = shutil.which("curl")
    if curl:
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):  # ALPN picks what the client asks
            run = subprocess.run([curl, "-s", flag, "--cacert", ca, "-o", "/dev/null", "-w",
                                  "%{http_code} %{http_version}", https(tls_gateway, "/v2/health/live")],
                                 capture_output=True, text=True, timeout=20)
            assert run.stdout == f"200 {version}", (flag, run.stdout, run.stderr)
        # A client that trusts another CA refuses the server's certificate.
        run = subprocess.run([curl, "-s", https(tls_gateway, "/v2/health/live")], capture_output=True, timeout=20)
        assert run.returncode == 60, run  # CURLE_PEER_FAILED_VERIFICATION


def test_http2_over_https_with_alpn_h2(tls_gateway, pki):
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(pki / "ca.pem")), timeout=30) as client:
        body = {"inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": PIXELS[:2].tolist()}]}
        answer = client.post(https(tls_gateway, "/v2/models/digits/versions/2/infer"), json=body)
        assert answer.http_version == "HTTP/2" and answer.status_code == 200, answer.text
        logits = next(o for o in answer.json()["outputs"] if o["name"] == "logits")
        np.testing.assert_allclose(np.asarray(logits["data"]).reshape(2, 10), reference(PIXELS[:2])["logits"],
                                   rtol=1e-4, atol=1e-4)
        # An answer of many TLS records and DATA frames.
        request_id = "z" * 200_000
        answer = client.post(https(tls_gateway, "/v2/models/digits/versions/2/infer"), json={**body, "id": request_id})
        assert answer.status_code == 200 and answer.json()["id"] == request_id
        assert client.post(https(tls_gateway, "/v2/models/digits/infer"), content=b"{").status_code == 400


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_http_over_https(tls_gateway, pki, binary):
    client = httpclient.InferenceServerClient(f"localhost:{tls_gateway.rest_port}", ssl=True,
                                              ssl_options={"ca_certs": str(pki / "ca.pem")})
    try:
        assert client.is_server_ready()
        assert client.get_model_metadata("digits")["name"] == "digits"
        inp = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        inp.set_data_from_numpy(PIXELS, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer("digits", [inp], model_version="2", outputs=outputs)
        np.testing.assert_allclose(result.as_numpy("probabilities"), reference(PIXELS)["probabilities"],
                                   rtol=1e-4, atol=1e-4)
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.infer("no-such-model", [inp])
    finally:
        client.close()


def test_cleartext_client_gets_no_http_answer(tls_gateway):
    with socket.create_connection(("127.0.0.1", tls_gateway.rest_port), timeout=10) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        try:
            while chunk := s.recv(4096):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not reply.startswith(b"HTTP/"), reply


def test_alpn_takes_h2_or_http1_and_refuses_the_rest(tls_gateway, pki):
    for offered, chosen in ((["h2"], "h2"), (["http/1.1"], "http/1.1"), (["http/1.1", "h2"], "h2")):
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        context.set_alpn_protocols(offered)
        with socket.create_connection(("127.0.0.1", tls_gateway.rest_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == chosen, offered
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.set_alpn_protocols(["spdy/3"])
    with socket.create_connection(("127.0.0.1", tls_gateway.rest_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
            context.wrap_socket(raw, server_hostname="localhost")


def test_mutual_tls_on_the_rest_port(mtls_gateway, pki):
    ca = str(pki / "ca.pem")
    cert = (str(pki / "client.pem"), str(pki / "client.key"))
    assert requests.get(https(mtls_gateway, "/v2/health/live"), verify=ca, cert=cert).json() == {"live": True}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https(mtls_gateway, "/v2/health/live"), verify=ca)
    client = httpclient.InferenceServerClient(
        f"localhost:{mtls_gateway.rest_port}", ssl=True,
        ssl_options={"ca_certs": ca, "certfile": cert[0], "keyfile": cert[1]})
    try:
        inp = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        inp.set_data_from_numpy(PIXELS)
        result = client.infer("digits", [inp], model_version="2")
        np.testing.assert_allclose(result.as_numpy("probabilities"), reference(PIXELS)["probabilities"],
                                   rtol=1e-4, atol=1e-4)
    finally:
        client.close()
    # The refused client did not hurt the port.
    assert requests.get(https(mtls_gateway, "/v2/health/ready"), verify=ca, cert=cert).status_code == 200
