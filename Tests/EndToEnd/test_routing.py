"""Traffic policies against the real gateway: a sticky 50/50 canary of `digits` by `x-user-id` with every
call mirrored to the other version, the `switchyard-route` trailer, primaries unchanged by shadowing, the
comparison sink's JSON Lines records, and explicit bandit feedback through switchyard.v1.Feedback/Report."""

import json
import struct

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from conftest import MODELS
from faults_support import copy_digits
from tritonclient.grpc import service_pb2, service_pb2_grpc

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)
USERS = [f"user-{n}" for n in range(40)]


def reference(version, pixels):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"pixels": pixels})[0]


@pytest.fixture(scope="module")
def routed(start_gateway, tmp_path_factory):
    """A gateway routing `digits` 50/50 by user with 100% shadow to the other version, and a bandit
    route with explicit feedback on a copy of the model named `bandit`."""
    root = tmp_path_factory.mktemp("routing")
    repository = copy_digits(root)
    copy_digits(root, "bandit")
    copy_digits(root, "byparam")
    sink = root / "comparisons"
    config = root / "switchyard.yaml"
    config.write_text(
        f"""
routes:
  - model: digits
    policy: canary
    sticky: {{header: x-user-id}}
    versions:
      - {{version: 1, weight: 50}}
      - {{version: 2, weight: 50}}
    shadow: {{fraction: 1.0}}
  - model: bandit
    policy: bandit
    versions: [{{version: "1"}}, {{version: "2"}}]
    bandit: {{algorithm: ucb1, reward: feedback, feedback_ttl_s: 60}}
  - model: byparam
    policy: canary
    sticky: {{parameter: user}}
    versions: [{{version: 1, weight: 1}}, {{version: 2, weight: 1}}]
sink:
  directory: {sink}
  max_file_bytes: 4096
  max_files: 1000
"""
    )
    gateway = start_gateway("--config", str(config), repository=repository)
    channel = grpc.insecure_channel(gateway.address)
    yield gateway, service_pb2_grpc.GRPCInferenceServiceStub(channel), channel, sink
    channel.close()


def request(pixels, model="digits", version="", request_id=""):
    req = service_pb2.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    tensor = req.inputs.add(name="pixels", datatype="FP32", shape=list(pixels.shape))
    req.raw_input_contents.append(pixels.tobytes())
    del tensor
    return req


def call(stub, req, user=None):
    metadata = [("x-user-id", user)] if user is not None else []
    response, rpc = stub.ModelInfer.with_call(req, metadata=metadata, timeout=10)
    trailers = dict(rpc.trailing_metadata())
    probabilities = np.frombuffer(response.raw_output_contents[-1], dtype=np.float32)
    return response, trailers, probabilities


def parse_route(trailer):
    return dict(part.strip().split("=", 1) for part in trailer.split(";"))


sent = {}  # request id → (served version, pixels row index)


def test_sticky_split_trailer_and_unchanged_primaries(routed):
    _, stub, _, _ = routed
    assignment = {}
    for round_ in range(3):
        for n, user in enumerate(USERS):
            row = (n + round_) % len(PIXELS)
            request_id = f"{user}-{round_}"
            response, trailers, probabilities = call(stub, request(PIXELS[row : row + 1], request_id=request_id), user)
            route = parse_route(trailers["switchyard-route"])
            assert route["policy"] == "canary"
            assert route["generation"] == "1"
            assert route["version"] == response.model_version
            assert response.id == request_id
            # Same user → same version, every time.
            assert assignment.setdefault(user, response.model_version) == response.model_version
            # The primary answer is the served version's own answer, untouched by its shadow.
            expected = reference(response.model_version, PIXELS[row : row + 1])
            np.testing.assert_allclose(probabilities.reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
            sent[request_id] = (response.model_version, row)
    counts = {v: list(assignment.values()).count(v) for v in ("1", "2")}
    # 40 users split 50/50: both versions serve a fair share (binomial, p < 1e-4 to fall outside).
    assert 8 <= counts["1"] <= 32 and 8 <= counts["2"] <= 32, counts


def test_random_split_without_key_and_explicit_version(routed):
    _, stub, _, _ = routed
    seen = set()
    for n in range(40):
        request_id = f"anon-{n}"
        response, trailers, _ = call(stub, request(PIXELS[:2], request_id=request_id))
        seen.add(response.model_version)
        sent[request_id] = (response.model_version, None)
    assert seen == {"1", "2"}
    response, trailers, _ = call(stub, request(PIXELS[:1], version="1", request_id="explicit-1"), user="user-0")
    assert response.model_version == "1"
    assert parse_route(trailers["switchyard-route"]) == {"generation": "1", "version": "1", "policy": "explicit"}
    sent["explicit-1"] = ("1", None)


def test_errors_keep_their_status_under_shadowing(routed):
    _, stub, _, _ = routed
    bad = service_pb2.ModelInferRequest(model_name="digits", id="bad")
    bad.inputs.add(name="pixels", datatype="FP32", shape=[1, 63])
    bad.raw_input_contents.append(np.zeros(63, dtype=np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.ModelInfer(bad, metadata=[("x-user-id", "user-1")], timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected FP32 [-1, 64], got FP32 [1, 63]" in excinfo.value.details()
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.ModelInfer(request(PIXELS[:1], version="7"), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND


def test_sticky_key_from_a_request_parameter(routed):
    _, stub, _, _ = routed
    assignment = {}
    for _ in range(2):
        for n in range(30):
            req = request(PIXELS[:1], model="byparam")
            if n % 2:
                req.parameters["user"].string_param = f"u{n}"
            else:
                req.parameters["user"].int64_param = n
            response, trailers, _ = call(stub, req)
            assert parse_route(trailers["switchyard-route"])["policy"] == "canary"
            assert assignment.setdefault(n, response.model_version) == response.model_version
    assert set(assignment.values()) == {"1", "2"}


def report(channel, request_id, reward):
    body = b"\x0a" + bytes([len(request_id)]) + request_id.encode() + b"\x11" + struct.pack("<d", reward)
    method = channel.unary_unary("/switchyard.v1.Feedback/Report")
    answer = method(body, timeout=10)
    # ReportResponse{1: outcome}: APPLIED = 1, LATE = 2, UNKNOWN = 3.
    return {b"\x08\x01": "APPLIED", b"\x08\x02": "LATE", b"\x08\x03": "UNKNOWN"}[answer]


def test_bandit_feedback_is_joined_by_request_id(routed):
    _, stub, channel, _ = routed
    versions = set()
    for n in range(4):
        response, trailers, _ = call(stub, request(PIXELS[:1], model="bandit", request_id=f"fb-{n}"))
        assert parse_route(trailers["switchyard-route"])["policy"] == "bandit"
        versions.add(response.model_version)
        assert report(channel, f"fb-{n}", 1.0 if response.model_version == "2" else 0.0) == "APPLIED"
    # UCB1 tries every arm before exploiting.
    assert versions == {"1", "2"}
    assert report(channel, "fb-0", 1.0) == "UNKNOWN"  # already reported
    assert report(channel, "never-routed", 0.5) == "UNKNOWN"
    with pytest.raises(grpc.RpcError) as excinfo:
        report(channel, "fb-1", 1.5)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reward: expected a number in [0, 1], got 1.5" in excinfo.value.details()


def test_sink_records_every_pair(routed):
    gateway, _, _, sink = routed
    gateway.stop()  # drains: pools finish, the sink writes every queued record
    files = sorted(sink.glob("comparisons-*.jsonl"))
    assert len(files) > 1, "4 KiB files should have rotated"
    assert all(f.stat().st_size <= 4096 for f in files)
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    by_id = {r["request_id"]: r for r in records}
    assert len(records) == len(by_id) == len(sent), (len(records), len(sent))
    for request_id, (served, row) in sent.items():
        record = by_id[request_id]
        assert record["model"] == "digits"
        assert record["primary_version"] == served
        assert record["shadow_version"] == {"1": "2", "2": "1"}[served]
        assert record["primary_error"] is None and record["shadow_error"] is None, record
        assert record["primary_latency_ns"] > 0 and record["shadow_latency_ns"] > 0
        outputs = {o["name"]: o for o in record["outputs"]}
        output = outputs["probabilities"]
        if row is not None:
            a = reference("1", PIXELS[row : row + 1])
            b = reference("2", PIXELS[row : row + 1])
            assert output["max_abs_delta"] == pytest.approx(float(np.abs(a - b).max()), abs=1e-4)
            assert output["mean_abs_delta"] == pytest.approx(float(np.abs(a - b).mean()), abs=1e-4)
            assert record["agreed"] == bool(a.argmax() == b.argmax())
            assert output["argmax_agreement"] == (1.0 if record["agreed"] else 0.0)
    log = gateway.output()
    assert "comparison sink stopped" in log and f"written={len(sent)}" in log, log


def refused_start(config):
    """Starts the gateway with `config`, which it must refuse; returns what it printed on stderr."""
    import subprocess

    from conftest import binary

    result = subprocess.run(
        [binary(), "serve", "--config", str(config), "--model-repository", str(MODELS), "--listen", "127.0.0.1:0", "--rest-listen", ""],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stderr


def test_invalid_routes_are_refused_with_key_paths(tmp_path):
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        """
routes:
  - model: digits
    policy: canary
    versions: [{version: 1, weight: 0}, {version: 9, weight: 0}]
    shadow: {version: 2, fraction: 1.5}
  - model: digits
    policy: bandit
    versions: [{version: 1}]
    bandit: {algorithm: softmax}
"""
    )
    stderr = refused_start(config)
    for message in [
        "routes[0].versions: canary weights must sum to more than 0",
        "routes[0].shadow.fraction: expected 0…1, got 1.5",
        "routes[1].model: model 'digits' already has a route (routes[0])",
        "routes[1].bandit.algorithm: unknown algorithm 'softmax'; expected one of epsilon_greedy, ucb1, thompson",
    ]:
        assert message in stderr, stderr
    # Versions are checked against the loaded repository once the structure is sound.
    config.write_text("routes:\n  - {model: digits, policy: fixed, versions: [{version: 9}]}\n")
    stderr = refused_start(config)
    expected = "routes[0].versions[0].version: model 'digits' has no loaded version '9'; available versions: 1, 2"
    assert expected in stderr, stderr
