"""Route fallback through the real gateway with grpcio: model `labels` has a real broken canary (its label table is
two labels short, so the engine fails every call it reads as an 8 or a 9, see label_models.py). With
`fallback: {to: baseline}` every such call is answered by the baseline, the trailer saying `fallback=2,…`, the canary's
failures still counted against it in /metrics; without it, the callers see the canary's failures. A fallback to a
version outside the route is refused at load and over the admin API with its key path."""

import os
import subprocess

import grpc
import numpy as np
import pytest
from conftest import binary
from label_models import samples, write_repository
from test_admin import TOKEN, admin, wait_admin
from tritonclient.grpc import service_pb2, service_pb2_grpc

PIXELS, DIGITS = samples()


def config(root, fallback="{to: baseline, on: [invalid_argument, internal, unavailable, resource_exhausted]}"):
    path = root / "switchyard.yaml"
    path.write_text(
        f"""
admin: {{token: {TOKEN}, token_name: e2e}}
routes:
  - model: labels
    policy: canary
    versions: [{{version: 1, weight: 50}}, {{version: 2, weight: 50}}]
{"    fallback: " + fallback if fallback else ""}
"""
    )
    return path


def infer(stub, row):
    """One call for sample `row`: (status code, label or details, route trailer as a dict)."""
    request = service_pb2.ModelInferRequest(model_name="labels")
    request.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(PIXELS[row : row + 1].tobytes())
    request.outputs.add(name="label")
    try:
        response, rpc = stub.ModelInfer.with_call(request, timeout=10)
        trailers = dict(rpc.trailing_metadata())
        label = int(np.frombuffer(response.raw_output_contents[0], dtype=np.int64)[0])
        result = (grpc.StatusCode.OK, label)
    except grpc.RpcError as error:
        trailers = dict(error.trailing_metadata() or ())
        result = (error.code(), error.details())
    route = dict(part.split("=", 1) for part in trailers.get("switchyard-route", "").split("; ") if part)
    return (*result, route)


def metrics(gateway):
    import urllib.request

    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        return response.read().decode()


def test_calls_the_canary_fails_are_answered_by_the_baseline(start_gateway, tmp_path):
    repository = write_repository(tmp_path / "models")
    gateway = start_gateway("--config", str(config(tmp_path)), repository=repository)
    failing = [row for row, digit in enumerate(DIGITS) if digit >= 8]
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = [(row, *infer(stub, row)) for _ in range(6) for row in range(len(DIGITS))]
    assert [code for _, code, _, _ in answers] == [grpc.StatusCode.OK] * len(answers), [
        a for a in answers if a[1] != grpc.StatusCode.OK
    ][:3]
    assert [label for _, _, label, _ in answers] == [DIGITS[row] for row, _, _, _ in answers]
    fell_back = [(row, route) for row, _, _, route in answers if "fallback" in route]
    # Half of the 8s and 9s go to the canary, which fails every one of them: all came back from the baseline.
    assert fell_back, "no call was routed to the failing canary"
    assert all(row in failing for row, _ in fell_back), fell_back
    assert all(route["version"] == "1" and route["fallback"] == "2,invalid_argument" for _, route in fell_back)
    assert all(route["policy"] == "canary" for _, route in fell_back)
    # The canary serves what it can: calls for other digits it answered itself.
    assert any(route.get("version") == "2" for _, _, _, route in answers)

    wait_admin(gateway)
    text = metrics(gateway)
    line = (
        'switchyard_fallback_calls_total{model="labels",from="2",to="1",code="invalid_argument",outcome="answered"} '
        f"{len(fell_back)}"
    )
    assert line in text, "\n".join(x for x in text.splitlines() if "fallback" in x)
    # The canary's failures are its own in the request metrics the rollout gates and dashboards read.
    failed = [
        x for x in text.splitlines()
        if x.startswith("switchyard_requests_total{") and 'model="labels"' in x and 'version="2"' in x
        and 'grpc_code="3"' in x
    ]
    assert failed and sum(float(x.rsplit(" ", 1)[1]) for x in failed) == len(fell_back), failed

    # The experiment report sees the canary's failures too: worse than the baseline by its error rate.
    status, report = admin(gateway, "GET", "/v1/experiments/labels")
    assert status == 200, report
    assert [v["version"] for v in report["versions"]] == ["1", "2"] and report["baseline"] == "1"
    canary = report["versions"][1]
    assert canary["failures"] == len(fell_back) and canary["error_rate_difference"]["estimate"] > 0, canary
    out = subprocess.run(
        [binary(), "experiments", "report", "labels", "--admin", gateway.admin_url, "--confidence", "0.9"],
        env=dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN), capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "labels  policy=canary  baseline=1  confidence=90.00% (always valid)" in out.stdout, out.stdout
    assert f"  version 2  calls={canary['calls']} failures={len(fell_back)}" in out.stdout, out.stdout
    assert "    error rate vs baseline: +" in out.stdout, out.stdout
    status, answer = admin(gateway, "GET", "/v1/experiments/labels?confidence=2")
    assert status == 400 and answer["error"] == "confidence: expected a number in (0.5, 1), got '2'", answer
    status, answer = admin(gateway, "GET", "/v1/experiments/digits")
    assert status == 404 and "has no route" in answer["error"], answer

    # The same route without a fallback: the callers get the canary's failure, naming the table.
    status, answer = admin(gateway, "PUT", "/v1/routes/labels", {
        "policy": "canary", "versions": [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}],
    })
    assert status == 200, answer
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = [infer(stub, row) for _ in range(6) for row in failing]
    refused = [(details, route) for code, details, route in answers if code != grpc.StatusCode.OK]
    assert refused, "no call reached the canary"
    assert all("outside the table of 8 entries" in details and route["version"] == "2" for details, route in refused)


def test_a_fallback_outside_the_route_is_refused_with_its_key_path(start_gateway, tmp_path):
    repository = write_repository(tmp_path / "models")
    path = config(tmp_path, fallback="{to: 3, on: [internal, teapot], deadline_margin_ms: -1}")
    result = subprocess.run(
        [binary(), "serve", "--config", str(path), "--model-repository", str(repository), "--listen", "127.0.0.1:0",
         "--rest-listen", ""],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    for message in [
        "routes[0].fallback.to: version '3' is not in the route; expected 'baseline' or one of 1, 2",
        "routes[0].fallback.on[1]: unknown failure code 'teapot'; expected one of",
        "routes[0].fallback.deadline_margin_ms: expected a finite number ≥ 0, got -1.0",
    ]:
        assert message in result.stderr, result.stderr

    gateway = start_gateway("--config", str(config(tmp_path, fallback=None)), repository=repository)
    wait_admin(gateway)
    route = {"policy": "canary", "versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}]}
    status, answer = admin(gateway, "PUT", "/v1/routes/labels", {**route, "fallback": {"to": "7"}})
    assert status == 400, answer
    assert "route.fallback.to: version '7' is not in the route; expected 'baseline' or one of 1, 2" in str(answer)
    status, answer = admin(gateway, "PUT", "/v1/routes/labels", {**route, "fallback": {"to": "1", "retries": 3}})
    assert status == 400 and "route.fallback" in str(answer) and "retries" in str(answer), answer
    status, answer = admin(gateway, "PUT", "/v1/routes/labels", {**route, "fallback": {"to": "1", "on": ["internal"]}})
    assert status == 200, answer
    assert answer["route"]["fallback"] == {"to": "1", "on": ["internal"], "deadline_margin_ms": 5}
    out = subprocess.run(
        [binary(), "routes", "get", "labels", "--admin", gateway.admin_url],
        env=dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN), capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0 and "fallback: 1  on=internal  deadline_margin_ms=5" in out.stdout, out


@pytest.mark.parametrize("margin_ms", [60_000])
def test_a_deadline_too_close_for_the_fallback_returns_the_canarys_failure(start_gateway, tmp_path, margin_ms):
    repository = write_repository(tmp_path / "models")
    fallback = f"{{to: baseline, on: [invalid_argument], deadline_margin_ms: {margin_ms}}}"
    gateway = start_gateway("--config", str(config(tmp_path, fallback=fallback)), repository=repository)
    row = DIGITS.index(9)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = [infer(stub, row) for _ in range(20)]
    refused = [route for code, _, route in answers if code == grpc.StatusCode.INVALID_ARGUMENT]
    assert refused and all(route["version"] == "2" and "fallback" not in route for route in refused), answers
    line = (
        'switchyard_fallback_calls_total{model="labels",from="2",to="1",code="invalid_argument",outcome="no_time"} '
        f"{len(refused)}"
    )
    wait_admin(gateway)
    assert line in metrics(gateway)
