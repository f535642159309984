"""Live operations beyond weight changes, against the real gateway under inference load: a progressive rollout
of a deliberately broken version is rolled back by its error-rate gate with no failed call after the rollback;
a healthy version's rollout advances through its steps on live error-rate, p99 and shadow-agreement gates and
completes; pause, resume and abort through the CLI; a held route refuses manual edits; model versions loaded
and unloaded at run time, with precise refusals."""

import json
import os
import shutil
import subprocess
import threading
import time

import grpc
import onnx
import pytest
from conftest import MODELS, binary
from test_admin import PIXELS, TOKEN, admin, wait_admin
from tritonclient.grpc import service_pb2, service_pb2_grpc


def broken_copy(source, target):
    """Version 2 of digits with its input renamed from 'pixels' to 'image': an export that no longer matches
    what callers send, so every call routed to it fails with INVALID_ARGUMENT."""
    model = onnx.load(str(source))
    for graph_input in model.graph.input:
        if graph_input.name == "pixels":
            graph_input.name = "image"
    for node in model.graph.node:
        node.input[:] = ["image" if name == "pixels" else name for name in node.input]
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))


def make_repository(root, versions=("1", "2"), broken=None):
    repository = root / "models"
    (repository / "digits").mkdir(parents=True)
    shutil.copy(MODELS / "digits" / "config.yaml", repository / "digits" / "config.yaml")
    for version in versions:
        shutil.copytree(MODELS / "digits" / version, repository / "digits" / version)
    if broken:
        # Callers keep getting version 2 until a route says otherwise.
        with open(repository / "digits" / "config.yaml", "a") as config:
            config.write("default_version: 2\n")
        broken_copy(MODELS / "digits" / "2" / "model.onnx", repository / "digits" / broken / "model.onnx")
    return repository


def write_config(root):
    config = root / "switchyard.yaml"
    config.write_text(
        f"""
admin:
  token: {TOKEN}
  token_name: e2e
  audit_log: {root / "audit.jsonl"}
  state_file: {root / "routes-state.json"}
sink:
  directory: {root / "sink"}
"""
    )
    return config


class Load:
    """Inference calls in a loop on a background thread: counts by served version and failures by time."""

    def __init__(self, gateway):
        self.channel = grpc.insecure_channel(gateway.address)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.stop_event = threading.Event()
        self.served = []
        self.failures = []
        self.thread = threading.Thread(target=self.run)

    def call(self):
        request = service_pb2.ModelInferRequest(model_name="digits")
        request.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
        request.raw_input_contents.append(PIXELS.tobytes())
        _, rpc = self.stub.ModelInfer.with_call(request, timeout=10)
        route = dict(part.split("=", 1) for part in dict(rpc.trailing_metadata())["switchyard-route"].split("; "))
        return route["version"]

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.served.append((time.monotonic(), self.call()))
            except grpc.RpcError as error:
                route = dict(error.trailing_metadata() or ()).get("switchyard-route", "")
                self.failures.append((time.monotonic(), error.code(), error.details(), route))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.channel.close()


def wait_phase(gateway, phases, timeout=60.0):
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = admin(gateway, "GET", "/v1/rollouts/digits")[1]
        if status.get("phase") in phases:
            return status
        time.sleep(0.1)
    raise AssertionError(f"rollout did not reach {phases} within {timeout}s: {status}\n{gateway.output()[-3000:]}")


def audit(root):
    return [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]


def cli(gateway, *args):
    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN)
    return subprocess.run([binary(), *args, "--admin", gateway.admin_url], env=env, capture_output=True, text=True,
                          timeout=30)


def test_broken_canary_is_rolled_back_by_its_error_rate_gate(start_gateway, tmp_path):
    repository = make_repository(tmp_path, broken="3")
    gateway = start_gateway("--config", str(write_config(tmp_path)), repository=repository)
    wait_admin(gateway)
    with Load(gateway) as load:
        time.sleep(0.5)
        status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {
            "baseline": "2", "canary": "3", "steps": [20, 50, 100], "step_seconds": 5,
            "gates": {"max_error_rate": 0.05, "max_p99_ms": 500, "min_requests": 10},
            "reason": "ship v3",
        })
        assert status == 201, answer
        assert answer["phase"] == "running" and answer["canary_weight"] == 20
        final = wait_phase(gateway, {"rolled_back", "completed"}, timeout=30)
        rolled_back_at = time.monotonic()
        time.sleep(1.0)
    assert final["phase"] == "rolled_back", final
    assert "gate max_error_rate failed" in final["detail"]
    assert final["canary_weight"] == 0
    # Before the rollback only the canary failed, with a message naming the mismatch; after it, nothing fails
    # and the baseline serves everything.
    assert load.failures, "the broken canary never received a call"
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for _, code, _, _ in load.failures)
    assert all("pixels" in details for _, _, details, _ in load.failures)
    # Each refusal names the version that refused it in its switchyard-route trailer.
    assert all("version=3" in route and "policy=canary" in route for *_, route in load.failures), load.failures[:3]
    assert [f for f in load.failures if f[0] > rolled_back_at] == []
    after = [version for at, version in load.served if at > rolled_back_at]
    assert after and set(after) == {"2"}
    route = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert {v["version"]: v["weight"] for v in route["versions"]} == {"2": 100, "3": 0}
    actions = [entry["action"] for entry in audit(tmp_path)]
    assert actions[0] == "rollout.start" and actions[-1] == "rollout.rollback"
    assert audit(tmp_path)[0]["reason"].startswith("ship v3")
    assert "rollout rollback" in gateway.output()
    gateway.stop()


def test_broken_canary_is_rolled_back_by_the_comparison_with_its_baseline(start_gateway, tmp_path):
    repository = make_repository(tmp_path, broken="3")
    gateway = start_gateway("--config", str(write_config(tmp_path)), repository=repository)
    wait_admin(gateway)
    with Load(gateway):
        time.sleep(0.5)
        status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {
            "baseline": "2", "canary": "3", "steps": [30, 100], "step_seconds": 5,
            "gates": {"error_rate_vs_baseline": {"confidence": 0.95, "max_increase": 0.02}, "min_requests": 10},
        })
        assert status == 201, answer
        assert answer["gates"]["error_rate_vs_baseline"] == {"confidence": 0.95, "max_increase": 0.02}
        final = wait_phase(gateway, {"rolled_back", "completed"}, timeout=30)
    assert final["phase"] == "rolled_back", final
    assert final["detail"].startswith(
        "gate error_rate_vs_baseline failed: the canary is worse than the baseline; canary error rate 100% vs baseline 0%"
    ), final["detail"]
    assert "95% always-valid interval [" in final["detail"]
    gateway.stop()


def test_healthy_canary_advances_on_live_gates_and_completes(start_gateway, tmp_path):
    gateway = start_gateway("--config", str(write_config(tmp_path)), repository=make_repository(tmp_path))
    wait_admin(gateway)
    with Load(gateway) as load:
        out = cli(gateway, "rollout", "start", "digits", "--baseline", "1", "--canary", "2", "--steps", "25,100",
                  "--step-seconds", "1", "--max-error-rate", "0.01", "--max-p99-ms", "500",
                  "--min-shadow-agreement", "0.8", "--min-requests", "10", "--reason", "v2 everywhere")
        assert out.returncode == 0, out.stderr
        assert "1 → 2  running  step 1/2 [25, 100]%  canary weight 25" in out.stdout
        # A held route refuses manual edits while the rollout runs.
        status, answer = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"2": 90}})
        assert status == 409 and "is held: a rollout of version 2 is in progress" in answer["error"], answer
        final = wait_phase(gateway, {"completed", "rolled_back"}, timeout=60)
    assert final["phase"] == "completed", final
    assert load.failures == []
    assert [event["event"] for event in final["events"]] == ["start", "advance", "complete"]
    route = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert {v["version"]: v["weight"] for v in route["versions"]} == {"1": 0, "2": 100}
    assert "shadow" not in route  # the agreement gate's mirror ends with the rollout
    report = admin(gateway, "GET", "/v1/shadow/report")[1]["pairs"]
    assert any(p["primary_version"] == "1" and p["shadow_version"] == "2" and p["compared"] > 0 for p in report)
    out = cli(gateway, "rollout", "status", "digits")
    assert out.returncode == 0 and "completed" in out.stdout and "every step passed" in out.stdout, out
    assert [e["action"] for e in audit(tmp_path)] == ["rollout.start", "rollout.advance", "rollout.complete"]
    gateway.stop()


def test_pause_resume_abort_through_the_cli(start_gateway, tmp_path):
    gateway = start_gateway("--config", str(write_config(tmp_path)), repository=make_repository(tmp_path))
    wait_admin(gateway)
    out = cli(gateway, "rollout", "start", "digits", "--baseline", "1", "--canary", "2", "--steps", "10,50",
              "--step-seconds", "300", "--max-error-rate", "0.01")
    assert out.returncode == 0, out.stderr
    out = cli(gateway, "rollout", "pause", "digits", "--reason", "investigating")
    assert out.returncode == 0 and "paused" in out.stdout, out
    out = cli(gateway, "rollout", "pause", "digits")
    assert out.returncode == 1 and "the rollout of 'digits' is paused; pause needs it running" in out.stderr, out
    out = cli(gateway, "rollout", "resume", "digits", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["phase"] == "running", out
    out = cli(gateway, "rollout", "abort", "digits", "--reason", "not today")
    assert out.returncode == 0 and "aborted" in out.stdout, out
    route = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert {v["version"]: v["weight"] for v in route["versions"]} == {"1": 100, "2": 0}
    assert [e["action"] for e in audit(tmp_path)] == [
        "rollout.start", "rollout.pause", "rollout.resume", "rollout.abort"]
    # Bad plans are refused with every bad field named, and nothing starts.
    status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {
        "baseline": "1", "canary": "9", "steps": [50, 10], "gates": {"max_error_rate": 3}})
    assert status == 400
    for field in ["rollout.canary: version '9' is not loaded", "rollout.steps[1]", "rollout.gates.max_error_rate"]:
        assert field in answer["error"], answer
    status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {"baseline": "1", "canary": "2", "gatez": {}})
    assert status == 400 and answer["error"].startswith("rollout.gatez: unknown field"), answer
    assert admin(gateway, "GET", "/v1/rollouts/digits")[1]["phase"] == "aborted"
    gateway.stop()


def test_models_load_and_unload_at_run_time(start_gateway, tmp_path):
    repository = make_repository(tmp_path, versions=("1",))
    gateway = start_gateway("--config", str(write_config(tmp_path)), repository=repository)
    wait_admin(gateway)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        def infer(version):
            request = service_pb2.ModelInferRequest(model_name="digits", model_version=version)
            request.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
            request.raw_input_contents.append(PIXELS.tobytes())
            return stub.ModelInfer(request, timeout=10)

        # Not on disk yet: a precise 404.
        status, answer = admin(gateway, "POST", "/v1/models/digits/versions/2/load")
        assert status == 404 and "no model file digits/2/model.onnx" in answer["error"], answer
        shutil.copytree(MODELS / "digits" / "2", repository / "digits" / "2")
        out = cli(gateway, "models", "load", "digits", "2", "--reason", "new export")
        assert out.returncode == 0 and "loaded digits version 2; loaded versions: 1, 2" in out.stdout, out
        assert infer("2").model_version == "2"
        status, answer = admin(gateway, "POST", "/v1/models/digits/versions/2/load")
        assert status == 409 and "already loaded" in answer["error"], answer

        # A corrupt file is refused with the importer's reason; the gateway stays ready.
        (repository / "digits" / "4").mkdir()
        (repository / "digits" / "4" / "model.onnx").write_bytes(b"\x08\x07garbage")
        status, answer = admin(gateway, "POST", "/v1/models/digits/versions/4/load")
        assert status == 400 and answer["error"].startswith("model 'digits' version 4 did not load:"), answer
        assert admin(gateway, "GET", "/readyz")[0] == 200

        # A routed version stays until the route lets it go.
        assert admin(gateway, "PUT", "/v1/routes/digits", {
            "policy": "canary", "versions": [{"version": "1", "weight": 1}, {"version": "2", "weight": 1}]})[0] == 200
        status, answer = admin(gateway, "POST", "/v1/models/digits/versions/2/unload")
        assert status == 409 and "the route of 'digits' lists it" in answer["error"], answer
        assert admin(gateway, "DELETE", "/v1/routes/digits")[0] == 200
        out = cli(gateway, "models", "unload", "digits", "2")
        assert out.returncode == 0 and "unloaded digits version 2" in out.stdout, out
        with pytest.raises(grpc.RpcError) as error:
            infer("2")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "available versions: 1" in error.value.details()
        assert infer("").model_version == "1"
        model = admin(gateway, "GET", "/v1/models/digits")[1]
        assert [v["version"] for v in model["versions"]] == ["1"] and model["ready"]
    entries = audit(tmp_path)
    assert [(e["action"], e.get("version")) for e in entries if e["action"].startswith("model.")] == [
        ("model.load", "2"), ("model.unload", "2")]
    assert entries[0]["reason"] == "new export"
    gateway.stop()
