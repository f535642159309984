"""TLS with certificates made at test time by the openssl CLI: server-authenticated TLS with ALPN h2,
mutual TLS where a client without a certificate, with one from another CA, or with an expired one is
refused, and the protocol policy (TLS 1.2+, ECDHE + AEAD suites only, no renegotiation) checked from the
outside with `openssl s_client`."""

import subprocess
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from certificates import issue, make_ca, openssl
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca", "/CN=switchyard-test-ca")
    make_ca(d, "other-ca", "/CN=some-other-ca")
    for name, ca in (("server", "ca"), ("client", "ca"), ("rogue", "other-ca")):
        issue(d, name, f"/CN={name}", "DNS:localhost,IP:127.0.0.1", ca)
    # An expired client certificate from the right CA: `openssl ca` can set both validity dates.
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                              "serial = serial.txt\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n")
    (d / "index.txt").write_text("")
    (d / "serial.txt").write_text("1000\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=expired", "-keyout", "expired.key",
            "-out", "expired.csr", cwd=d)
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr",
            "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext", cwd=d)
    return d


def infer_once(address, pki, client_cert=False):
    kwargs = dict(ssl=True, root_certificates=str(pki / "ca.pem"))
    if client_cert:
        name = "client" if client_cert is True else client_cert
        kwargs.update(private_key=str(pki / f"{name}.key"), certificate_chain=str(pki / f"{name}.pem"))
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


def s_client(gw, pki, *args, stdin="", cert="client"):
    """One `openssl s_client` handshake against the gateway; returns its combined output. Standard input stays open
    for a second: under TLS 1.3 the session summary and the server's verdict on a client certificate come after the
    handshake, and an s_client whose input ends at once may quit before reading them (a race that shows on a busy
    machine)."""
    process = subprocess.Popen(
        ["openssl", "s_client", "-connect", gw.address, "-alpn", "h2", "-CAfile", str(pki / "ca.pem"),
         "-cert", str(pki / f"{cert}.pem"), "-key", str(pki / f"{cert}.key"), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        process.stdin.write(stdin.encode())
        process.stdin.flush()
    except BrokenPipeError:  # refused before it read anything: its output says why
        pass
    time.sleep(1.0)
    out, _ = process.communicate(timeout=20)
    return out.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def mtls_gateway(start_gateway, pki):
    return start_gateway(
        "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"),
        "--tls-client-ca", str(pki / "ca.pem"),
        tls=True,
    )


@pytest.mark.parametrize("cert, alert", [("rogue", "unknown ca"), ("expired", "certificate expired")])
def test_mutual_tls_refuses_bad_client_certificates(mtls_gateway, pki, cert, alert):
    with pytest.raises(InferenceServerException):
        infer_once(mtls_gateway.address, pki, client_cert=cert)
    # The refusal is the server's: its alert names the reason, under TLS 1.3 and 1.2 alike.
    for version in ("-tls1_3", "-tls1_2"):
        out = s_client(mtls_gateway, pki, version, cert=cert, stdin="\n")
        assert f"alert {alert}" in out, out
    # ... and the gateway keeps serving good clients.
    assert infer_once(mtls_gateway.address, pki, client_cert=True).shape == (1, 10)


@pytest.mark.parametrize(
    "args, accepted, expect",
    [
        (["-tls1_3"], True, "Protocol  : TLSv1.3"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], True, "Cipher    : ECDHE-RSA-AES128-GCM-SHA256"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"], True, "Cipher    : ECDHE-RSA-CHACHA20-POLY1305"),
        (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False, "alert protocol version"),
        (["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], False, "alert protocol version"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"], False, "alert handshake failure"),  # CBC, not AEAD
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA"], False, "alert handshake failure"),
        (["-tls1_2", "-cipher", "AES128-GCM-SHA256"], False, "alert handshake failure"),  # AEAD but no ECDHE
    ],
)
def test_tls_protocol_and_cipher_policy(mtls_gateway, pki, args, accepted, expect):
    out = s_client(mtls_gateway, pki, *args, stdin="\n")
    assert expect in out, out
    assert ("ALPN protocol: h2" in out) == accepted, out


def test_tls_renegotiation_is_refused(mtls_gateway, pki):
    # `R` asks s_client to renegotiate the TLS 1.2 session once it is up; the server declines.
    out = s_client(mtls_gateway, pki, "-tls1_2", stdin="R\n")
    assert "RENEGOTIATING" in out and "no renegotiation" in out, out
