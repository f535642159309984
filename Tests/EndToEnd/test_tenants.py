"""Tenants through the real gateway with grpcio: a tenant over its rate gets RESOURCE_EXHAUSTED naming the limit with
grpc-retry-pushback-ms, while another tenant's calls all pass; a tenant calling a model outside its list gets
PERMISSION_DENIED; calls naming no tenant are the default tenant's; /metrics counts every outcome."""

import json
import os
import subprocess
import urllib.request

import grpc
import numpy as np
import pytest
from conftest import MODELS, binary
from test_admin import TOKEN, wait_admin
from tritonclient.grpc import service_pb2, service_pb2_grpc

PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:1], dtype=np.float32)


def call(stub, tenant=None):
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
    request.raw_input_contents.append(PIXELS.tobytes())
    metadata = [("x-tenant-id", tenant)] if tenant else []
    try:
        _, rpc = stub.ModelInfer.with_call(request, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK, "", {}
    except grpc.RpcError as error:
        return error.code(), error.details(), dict(error.trailing_metadata() or ())


def test_tenants_are_admitted_by_their_own_limits(start_gateway, tmp_path):
    config = tmp_path / "switchyard.yaml"
    config.write_text("""
tenants:
  header: x-tenant-id
  default: public
  limits:
    public: {requests_per_second: 0.2, burst: 3}
    batch: {requests_per_second: 0.5, burst: 2}
    acme: {max_concurrent: 64, models: [digits]}
    lab: {models: [iris]}
""")
    gateway = start_gateway("--config", str(config))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        # 12 calls in a burst: "batch" gets its 2 (the next token is 2 s away), "acme" (no rate limit) gets all 12.
        batch = [call(stub, "batch") for _ in range(12)]
        acme = [call(stub, "acme") for _ in range(12)]
        assert [code for code, _, _ in acme] == [grpc.StatusCode.OK] * 12, acme
        assert sum(code == grpc.StatusCode.OK for code, _, _ in batch) == 2, batch
        refused = [(details, trailers) for code, details, trailers in batch if code != grpc.StatusCode.OK]
        assert all(code in (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED) for code, _, _ in batch)
        details, trailers = refused[0]
        assert "tenant 'batch' is over its rate of 0.5 calls/s (burst 2); retry in" in details, details
        assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 2000, trailers

        code, details, _ = call(stub, "lab")
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, details)
        assert details == "tenant 'lab' may not call model 'digits'; its models: iris"

        # No tenant, or one not listed: the default tenant's bucket (burst 3).
        anonymous = [call(stub) for _ in range(2)] + [call(stub, "stranger") for _ in range(2)]
        assert [code for code, _, _ in anonymous].count(grpc.StatusCode.OK) == 3, anonymous
        assert "tenant 'public'" in anonymous[-1][1], anonymous

    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    for line in [
        'switchyard_tenant_calls_total{tenant="batch",outcome="admitted"} 2',
        'switchyard_tenant_calls_total{tenant="batch",outcome="rate_limited"} 10',
        'switchyard_tenant_calls_total{tenant="acme",outcome="admitted"} 12',
        'switchyard_tenant_calls_total{tenant="lab",outcome="denied"} 1',
        'switchyard_tenant_calls_total{tenant="public",outcome="admitted"} 3',
        'switchyard_tenant_in_flight{tenant="acme"} 0',
    ]:
        assert line in metrics, f"{line} missing:\n" + "\n".join(x for x in metrics.splitlines() if "tenant" in x)


ACME_TOKEN = "acme-e2e-0123456789abcdef"


def call_with(stub, metadata, rows=1):
    pixels = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:rows], dtype=np.float32)
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=list(pixels.shape))
    request.raw_input_contents.append(pixels.tobytes())
    try:
        stub.ModelInfer(request, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details()


def test_bearer_tokens_identify_tenants_and_their_cost_is_reported(start_gateway, tmp_path):
    config = tmp_path / "switchyard.yaml"
    config.write_text(f"""
admin: {{token: {TOKEN}, token_name: e2e}}
tenants:
  header: x-tenant-id
  bearer_tokens: {{"{ACME_TOKEN}": acme}}
  limits:
    acme: {{max_concurrent: 64, weight: 3}}
    lab: {{}}
""")
    gateway = start_gateway("--config", str(config))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        # The token names acme, whatever the header claims; acme's calls have 1 and 4 rows.
        acme = [call_with(stub, [("authorization", f"Bearer {ACME_TOKEN}"), ("x-tenant-id", "lab")], rows=r)
                for r in (1, 4, 1, 4)]
        assert [code for code, _ in acme] == [grpc.StatusCode.OK] * 4, acme
        assert call_with(stub, [("x-tenant-id", "lab")])[0] == grpc.StatusCode.OK
        # A wrong token is refused without being echoed; no identity and no default tenant is refused by source.
        code, details = call_with(stub, [("authorization", "Bearer not-a-listed-token-000")])
        assert code == grpc.StatusCode.PERMISSION_DENIED and "tenants.bearer_tokens" in details, details
        assert "not-a-listed" not in details
        code, details = call_with(stub, [])
        assert code == grpc.StatusCode.PERMISSION_DENIED, details
        assert details == ("the call names no tenant (expected its header 'x-tenant-id' or a bearer token) and there "
                           "is no default tenant; listed: acme, lab"), details
        code, details = call_with(stub, [("x-tenant-id", "stranger")])
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details.startswith("tenant 'stranger' (from the header 'x-tenant-id') is not listed"), details

    wait_admin(gateway)
    request = urllib.request.Request(gateway.admin_url + "/v1/tenants",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        report = json.loads(response.read())
    assert report["enabled"] is True
    tenants = {t["tenant"]: t for t in report["tenants"]}
    assert tenants["acme"]["admitted"] == 4 and tenants["lab"]["admitted"] == 1
    assert tenants["acme"]["weight"] == 3 and tenants["lab"]["weight"] == 1
    [usage] = tenants["acme"]["usage"]
    assert (usage["model"], usage["calls"], usage["rows"], usage["shed"], usage["failed"]) == ("digits", 4, 10, 0, 0)
    assert 0 < usage["compute_seconds"] < 1, usage
    [lab] = tenants["lab"]["usage"]
    assert (lab["calls"], lab["rows"]) == (1, 1)

    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    version = usage["version"]
    for line in [
        f'switchyard_tenant_model_calls_total{{tenant="acme",model="digits",version="{version}",outcome="answered"}} 4',
        f'switchyard_tenant_rows_total{{tenant="acme",model="digits",version="{version}"}} 10',
        "switchyard_tenant_unidentified_total 3",
    ]:
        assert line in metrics, f"{line} missing:\n" + "\n".join(x for x in metrics.splitlines() if "tenant" in x)
    compute = [x for x in metrics.splitlines() if x.startswith('switchyard_tenant_compute_seconds_total{tenant="acme"')]
    assert compute and float(compute[0].rsplit(" ", 1)[1]) == pytest.approx(usage["compute_seconds"], rel=1e-6)

    out = subprocess.run([binary(), "tenants", "report", "--admin", gateway.admin_url],
                         env=dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "acme  weight=3 admitted=4 rate_limited=0 concurrency_limited=0 denied=0 in_flight=0" in out.stdout, out.stdout
    assert f"  digits version {version}  calls=4 rows=10 shed=0 failed=0 compute=" in out.stdout, out.stdout
