"""TLS with certificates made at test time by the openssl CLI: server-authenticated TLS with ALPN h2,
and mutual TLS where a client without a certificate is refused."""

import subprocess

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=switchyard-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d


def infer_once(address, pki, client_cert=False):
    kwargs = dict(ssl=True, root_certificates=str(pki / "ca.pem"))
    if client_cert:
        kwargs.update(private_key=str(pki / "client.key"), certificate_chain=str(pki / "client.pem"))
    client = grpcclient.InferenceServerClient(address.replace("127.0.0.1", "localhost"), **kwargs)
    try:
        inp = grpcclient.InferInput("pixels", [1, 64], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 64), np.float32))
        return client.infer("digits", [inp]).as_numpy("probabilities")
    finally:
        client.close()


def test_tls_inference(start_gateway, pki):
    gw = start_gateway("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), tls=True)
    assert infer_once(gw.address, pki).shape == (1, 10)
    # A cleartext client cannot talk to the TLS port.
    with grpc.insecure_channel(gw.address) as channel:
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=3)


def test_mutual_tls(start_gateway, pki):
    gw = start_gateway(
        "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"),
        "--tls-client-ca", str(pki / "ca.pem"),
        tls=True,
    )
    assert infer_once(gw.address, pki, client_cert=True).shape == (1, 10)
    with pytest.raises(InferenceServerException):
        infer_once(gw.address, pki, client_cert=False)
