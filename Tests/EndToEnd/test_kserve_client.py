"""The KServe Python client (the `kserve` package's v2 InferenceRESTClient and InferenceGRPCClient, as KServe's
InferenceGraph, transformers and users' services call a runtime) against the real gateway: health, readiness and
inference over REST and gRPC, answers checked against onnxruntime; and why overload is answered RESOURCE_EXHAUSTED:
the gRPC client retries UNAVAILABLE (three attempts by default) but not RESOURCE_EXHAUSTED, so a refusal that says
UNAVAILABLE reaches the server three times. The client runs in its own process (kserve_calls.py says why)."""

import json
import pathlib
import re
import subprocess
import sys
import urllib.request

import numpy as np
import onnxruntime as ort
from conftest import MODELS
from faults_support import copy_digits

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"][:8], dtype=np.float32)
CALLS = pathlib.Path(__file__).resolve().parent / "kserve_calls.py"


def kserve(*args):
    run = subprocess.run([sys.executable, str(CALLS), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def reference(version):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"pixels": PIXELS})[0]


def check(answer):
    assert answer["health"] == [True, True, True], answer["health"]
    assert answer["model_name"] == "digits" and answer["id"] == "kserve-1", answer
    expected = reference(answer["model_version"] or "2")
    np.testing.assert_allclose(np.asarray(answer["probabilities"]), expected, rtol=1e-4, atol=1e-5)


def test_rest_client(start_gateway):
    check(kserve("rest", start_gateway(rest=True).rest_url))


def test_grpc_client(start_gateway):
    check(kserve("grpc", start_gateway().address))


def metric(gateway, name, **labels):
    text = urllib.request.urlopen(f"{gateway.admin_url}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match.group(1).split(",") for key, value in labels.items()):
            return float(match.group(2))
    return 0.0


def test_grpc_client_retries_unavailable_but_not_resource_exhausted(start_gateway, tmp_path):
    """One KServe gRPC call per case, counted at the server: a tenant over its rate (RESOURCE_EXHAUSTED) is refused
    once; a version that failed to load (UNAVAILABLE) is asked three times."""
    repository = copy_digits(tmp_path)
    (repository / "digits" / "2" / "model.onnx").write_bytes(b"not an onnx file")
    config = tmp_path / "switchyard.yaml"
    config.write_text("tenants:\n  header: x-tenant-id\n  default: everyone\n  limits:\n    everyone: {}\n"
                      "    slow: {requests_per_second: 0.01, burst: 1}\n")
    gw = start_gateway("--config", str(config), repository=repository)

    assert kserve("code", gw.address, "1", "slow") == {"code": "OK"}  # the bucket's one token
    before = metric(gw, "switchyard_tenant_calls_total", tenant="slow", outcome="rate_limited")
    assert kserve("code", gw.address, "1", "slow") == {"code": "RESOURCE_EXHAUSTED"}
    assert metric(gw, "switchyard_tenant_calls_total", tenant="slow", outcome="rate_limited") - before == 1

    before = metric(gw, "switchyard_grpc_calls_total", grpc_code="14")
    assert kserve("code", gw.address, "2") == {"code": "UNAVAILABLE"}
    assert metric(gw, "switchyard_grpc_calls_total", grpc_code="14") - before == 3
