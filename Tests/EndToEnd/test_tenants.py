"""Tenants through the real gateway with grpcio: a tenant over its rate gets RESOURCE_EXHAUSTED naming the limit with
grpc-retry-pushback-ms, while another tenant's calls all pass; a tenant calling a model outside its list gets
PERMISSION_DENIED; calls naming no tenant are the default tenant's; /metrics counts every outcome."""

import json
import urllib.request

import grpc
import numpy as np
from conftest import MODELS
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
