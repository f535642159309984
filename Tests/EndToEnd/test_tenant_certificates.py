"""Tenants named by the client certificate that mutual TLS verified, with certificates made at test time by the
openssl CLI: on the gRPC port (grpcio) and the REST port (requests), the certificate's subject CN or its SAN URI is the
tenant, whatever a header claims; a tenant's model list applies to it; a configuration asking for certificate
identities without client certificates is refused at load, naming the key."""

import json
import subprocess

import grpc
import numpy as np
import pytest
import requests
from certificates import issue, make_ca
from conftest import MODELS, binary
from tritonclient.grpc import service_pb2, service_pb2_grpc

PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:1], dtype=np.float32)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("tenant-pki")
    make_ca(d, "ca", "/CN=tenants-test-ca")
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1"), ("acme", "URI:spiffe://example.com/lab"),
                      ("lab", "DNS:lab.example.com")):
        issue(d, name, f"/O=tenants/CN={name}", san)
    return d


def config(tmp_path, pki, field, client_ca=True):
    path = tmp_path / f"tenants-{field}.yaml"
    ca = f", client_ca: {pki / 'ca.pem'}" if client_ca else ""
    path.write_text(f"""
tls: {{cert: {pki / 'server.pem'}, key: {pki / 'server.key'}{ca}}}
tenants:
  identity: {{source: client_certificate, field: {field}}}
  limits:
    acme: {{models: [digits]}}
    lab: {{models: [iris]}}
    "spiffe://example.com/lab": {{models: [iris]}}
""")
    return path


def grpc_call(address, pki, cert, claimed=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{cert}.key").read_bytes(),
        certificate_chain=(pki / f"{cert}.pem").read_bytes(),
    )
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
    request.raw_input_contents.append(PIXELS.tobytes())
    with grpc.secure_channel(address.replace("127.0.0.1", "localhost"), credentials) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        metadata = [("x-tenant-id", claimed)] if claimed else []
        try:
            stub.ModelInfer(request, metadata=metadata, timeout=10)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            return error.code(), error.details()


def rest_call(gateway, pki, cert):
    body = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": PIXELS.tolist()}]}
    answer = requests.post(f"https://localhost:{gateway.rest_port}/v2/models/digits/infer", json=body,
                           verify=str(pki / "ca.pem"), cert=(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key")),
                           timeout=10)
    return answer.status_code, answer.text


def test_the_subject_cn_names_the_tenant_on_both_ports(start_gateway, tmp_path, pki):
    gateway = start_gateway("--config", str(config(tmp_path, pki, "subject_cn")), tls=True, rest=True)
    # acme may call digits; lab may not, and claiming to be acme in a header changes nothing.
    assert grpc_call(gateway.address, pki, "acme") == (grpc.StatusCode.OK, "")
    assert grpc_call(gateway.address, pki, "lab", claimed="acme") == (
        grpc.StatusCode.PERMISSION_DENIED, "tenant 'lab' may not call model 'digits'; its models: iris")
    status, text = rest_call(gateway, pki, "acme")
    assert status == 200, text
    status, text = rest_call(gateway, pki, "lab")
    assert status == 403 and "tenant 'lab' may not call model 'digits'" in text, (status, text)


def test_a_san_uri_names_the_tenant_and_a_certificate_without_one_is_refused(start_gateway, tmp_path, pki):
    gateway = start_gateway("--config", str(config(tmp_path, pki, "san_uri")), tls=True)
    # acme's certificate carries spiffe://example.com/lab: that tenant may call only iris.
    code, details = grpc_call(gateway.address, pki, "acme")
    assert code == grpc.StatusCode.PERMISSION_DENIED, details
    assert details == "tenant 'spiffe://example.com/lab' may not call model 'digits'; its models: iris"
    # lab's certificate has no SAN URI: no tenant, and no default.
    code, details = grpc_call(gateway.address, pki, "lab")
    assert code == grpc.StatusCode.PERMISSION_DENIED, details
    assert details.startswith("the call names no tenant (expected its client certificate's first SAN URI)"), details


def test_certificate_identities_without_client_certificates_are_refused_at_load(tmp_path, pki):
    result = subprocess.run(
        [binary(), "serve", "--config", str(config(tmp_path, pki, "subject_cn", client_ca=False)),
         "--model-repository", str(MODELS), "--listen", "127.0.0.1:0", "--rest-listen", ""],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "tenants.identity: source client_certificate needs TLS that requires client certificates" in result.stderr, \
        result.stderr
