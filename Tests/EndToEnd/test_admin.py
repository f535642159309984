"""The admin API against the real gateway: 100 weight changes under steady inference load with no failed
call and each change visible in the `switchyard-route` trailer on the next call, one audit entry per change,
routes back after a restart, precise 4xx answers to bad input that change nothing, auth on mutations, a
/metrics scrape that parses, and the `switchyard routes|models|shadow` CLI."""

import json
import os
import subprocess
import threading
import urllib.request

import faults_support
import grpc
import numpy as np
import pytest
from conftest import MODELS, binary
from faults_support import copy_digits, wait_admin
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc

TOKEN = "e2e-admin-token"
PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:2], dtype=np.float32)


def admin(gateway, method, path, body=None, token=TOKEN, raw=None, headers=None):
    """One admin API call, with this module's token unless told otherwise: (status, decoded JSON answer)."""
    return faults_support.admin(gateway, method, path, body, token, raw, headers)


def canary_config(weights=(50, 50)):
    """The configuration these tests and test_fleet's replicas start from: digits split between versions 1 and 2 at
    `weights`, and this module's admin token. It ends inside `admin:`, so a caller may append admin keys (indented
    two spaces) and then other sections."""
    return f"""
routes:
  - model: digits
    policy: canary
    versions: [{{version: 1, weight: {weights[0]}}}, {{version: 2, weight: {weights[1]}}}]
admin:
  token: {TOKEN}
  token_name: e2e
"""


def infer(stub):
    req = service_pb2.ModelInferRequest(model_name="digits")
    req.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
    req.raw_input_contents.append(PIXELS.tobytes())
    _, rpc = stub.ModelInfer.with_call(req, timeout=10)
    route = dict(rpc.trailing_metadata())["switchyard-route"]
    return dict(part.split("=", 1) for part in route.split("; "))


@pytest.fixture(scope="module")
def setup(start_gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("admin")
    repository = copy_digits(root)
    config = root / "switchyard.yaml"
    config.write_text(canary_config() + f"""\
  audit_log: {root / "audit.jsonl"}
  state_file: {root / "routes-state.json"}
  max_body_bytes: 65536
""")

    def start():
        gateway = start_gateway("--config", str(config), repository=repository)
        wait_admin(gateway)
        return gateway

    return start, root


def test_weight_changes_under_load_then_restart(setup):
    start, root = setup
    gateway = start()
    channel = grpc.insecure_channel(gateway.address)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    stop = threading.Event()
    outcome = {"ok": 0, "failed": [], "served": []}

    def load():
        while not stop.is_set():
            try:
                route = infer(stub)
                outcome["served"].append((int(route["generation"]), route["version"]))
                outcome["ok"] += 1
            except Exception as error:  # noqa: BLE001 - every failure is a test failure, recorded with its text
                outcome["failed"].append(repr(error))

    loader = threading.Thread(target=load)
    loader.start()
    generations = []
    initial = admin(gateway, "GET", "/v1/routes/digits")[1]
    weights_at = {initial["generation"]: {v["version"]: v["weight"] for v in initial["route"]["versions"]}}
    try:
        for step in range(100):
            weights = {"1": step % 7, "2": 1 + step % 5}
            status, answer = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": weights},
                                   headers={"X-Switchyard-Reason": f"step {step}"})
            assert status == 200, answer
            generation = answer["generation"]
            weights_at[generation] = weights
            assert [v["weight"] for v in answer["route"]["versions"]] == [weights["1"], weights["2"]]
            # The very next call is routed on the new table.
            assert int(infer(stub)["generation"]) == generation
            generations.append(generation)
    finally:
        stop.set()
        loader.join(timeout=30)
    assert outcome["failed"] == [], outcome["failed"][:5]
    print(f"load: {outcome['ok']} calls during 100 changes")
    assert outcome["ok"] > 0
    assert generations == list(range(generations[0], generations[0] + 100))
    # No call was misrouted: each was served by a version with a non-zero weight in the table it names.
    misrouted = [(g, v) for g, v in outcome["served"] if weights_at[g][v] <= 0]
    assert misrouted == [], misrouted[:5]

    entries = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
    assert len(entries) == 100
    assert [e["generation"] for e in entries] == generations
    assert {e["actor"] for e in entries} == {"e2e"}
    assert entries[-1]["reason"] == "step 99"
    assert entries[-1]["action"] == "route.weights"
    assert entries[-1]["old"][0]["versions"] == entries[-2]["new"][0]["versions"]
    last = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert TOKEN not in gateway.output()
    channel.close()
    gateway.stop()

    # Restart: the state file's routes win over the configuration file's 50/50.
    gateway = start()
    assert admin(gateway, "GET", "/v1/routes/digits")[1]["route"] == last
    assert "routes from the state file override the configuration file's" in gateway.output()
    gateway.stop()


BAD_INPUT = [
    ("PATCH", "/v1/routes/digits/weights", b'{"weights": {"1": ', 400, "body: malformed JSON"),
    ("PATCH", "/v1/routes/nope/weights", b'{"weights": {"1": 1}}', 404, "unknown model 'nope'; available models: digits"),
    ("PATCH", "/v1/routes/digits/weights", b'{"weights": {"7": 1}}', 400, "weights.7: version '7' is not in the route"),
    ("PATCH", "/v1/routes/digits/weights", b'{"weights": {"1": 0, "2": 0}}', 400, "weights: canary weights must sum"),
    ("PUT", "/v1/routes/digits/shadow", b'{"version": "2", "fraction": -0.1}', 400,
     "route.shadow.fraction: expected 0\u20261, got -0.1"),
    ("PUT", "/v1/routes/digits", b'{"policy": "canary", "versions": [{"version": "9", "weight": 1}]}', 400,
     "route.versions[0].version: model 'digits' has no loaded version '9'; available versions: 1, 2"),
    ("PATCH", "/v1/routes/digits/weights", b'{"weights": {"1": 1}, "reason": "' + b"x" * 100_000 + b'"}', 413,
     "request body exceeds admin.max_body_bytes (65536 bytes)"),
]


@pytest.mark.parametrize("method,path,body,status,message", BAD_INPUT)
def test_bad_input_is_refused_precisely_and_changes_nothing(setup, method, path, body, status, message, request):
    start, _ = setup
    gateway = getattr(request.module, "_gateway", None)
    if gateway is None or gateway.process.poll() is not None:
        gateway = request.module._gateway = start()
    before = admin(gateway, "GET", "/v1/routes")[1]
    got, answer = admin(gateway, method, path, raw=body)
    assert got == status, answer
    assert answer["error"].startswith(message), answer
    assert admin(gateway, "GET", "/v1/routes")[1] == before


def test_auth_metrics_and_cli(setup, request):
    start, _ = setup
    gateway = getattr(request.module, "_gateway", None)
    if gateway is None or gateway.process.poll() is not None:
        gateway = request.module._gateway = start()
    before = admin(gateway, "GET", "/v1/routes")[1]
    assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 1}}, token=None)[0] == 401
    assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 1}}, token="wrong")[0] == 401
    assert admin(gateway, "DELETE", "/v1/routes/digits", token=None)[0] == 401
    assert admin(gateway, "GET", "/v1/routes")[1] == before
    assert admin(gateway, "GET", "/v1/routes", token=None)[0] == 200  # reads on loopback need no token

    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(5):
            infer(stub)
    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in ["switchyard_requests", "switchyard_request_duration_seconds", "switchyard_queue_wait_seconds",
                 "switchyard_compute_seconds", "switchyard_batch_size_rows", "switchyard_queue_depth",
                 "switchyard_rejected", "switchyard_shadow_jobs", "switchyard_grpc_calls",
                 "switchyard_sink_dropped", "switchyard_shadow_pairs", "switchyard_bandit_pulls",
                 "switchyard_route_generation", "switchyard_build_info", "switchyard_feedback_reports"]:
        assert name in families, f"{name} missing from /metrics"
    assert families["switchyard_batch_size_rows"].type == "histogram"
    assert families["switchyard_queue_wait_seconds"].type == "histogram"
    successes = sum(s.value for s in families["switchyard_requests"].samples
                    if s.labels.get("grpc_code") == "0" and s.name == "switchyard_requests_total")
    assert successes >= 5
    # Every request series names how its version was chosen.
    assert all(s.labels.get("route") in {"default", "explicit", "fixed", "canary", "bandit"}
               for s in families["switchyard_requests"].samples)
    ok_calls = [s.value for s in families["switchyard_grpc_calls"].samples if s.labels.get("grpc_code") == "0"]
    assert ok_calls and ok_calls[0] >= 5

    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN)
    cli = [binary()]
    url = ["--admin", gateway.admin_url]
    out = subprocess.run(cli + ["routes", "weights", "digits", "1=3", "2=1", "--reason", "cli", *url],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "version 1  weight=3 (75.0%)" in out.stdout, out.stdout
    out = subprocess.run(cli + ["routes", "get", "digits", "--json", *url], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [v["weight"] for v in json.loads(out.stdout)["route"]["versions"]] == [3, 1]
    out = subprocess.run(cli + ["routes", "weights", "digits", "9=1", *url], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "weights.9: version '9' is not in the route" in out.stderr, out.stderr
    out = subprocess.run(cli + ["models", "list", *url], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "digits  ready" in out.stdout, out.stdout + out.stderr
    out = subprocess.run(cli + ["shadow", "report", "--json", *url], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "pairs" in json.loads(out.stdout), out.stdout + out.stderr
    out = subprocess.run(cli + ["routes", "shadow", "digits", "2", "--fraction", "0.5", *url], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "shadow: 2  fraction=0.5" in out.stdout, out.stdout + out.stderr
    out = subprocess.run(cli + ["routes", "shadow", "digits", "--fraction", "0", "--json", *url], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "shadow" not in json.loads(out.stdout)["route"], out.stdout + out.stderr
    out = subprocess.run(cli + ["config", "reload", "--json", *url], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["routes"][0]["model"] == "digits", out.stdout + out.stderr
    out = subprocess.run(cli + ["routes", "set", "digits", "--policy", "fixed", "--version", "2=1", *url],
                         capture_output=True, text=True)  # no token in the environment
    assert out.returncode == 1 and "HTTP 401" in out.stderr, out.stderr


def test_sighup_reload_is_audited_and_persisted(setup, request):
    start, root = setup
    gateway = getattr(request.module, "_gateway", None)
    if gateway is None or gateway.process.poll() is not None:
        gateway = request.module._gateway = start()
    import signal
    import time

    assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 7, "2": 3}})[0] == 200
    audit = root / "audit.jsonl"
    before = len(audit.read_text().splitlines())
    generation = admin(gateway, "GET", "/v1/routes")[1]["generation"]
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline and admin(gateway, "GET", "/v1/routes")[1]["generation"] == generation:
        time.sleep(0.05)
    routes = admin(gateway, "GET", "/v1/routes")[1]
    assert routes["generation"] == generation + 1
    # The configuration file's 50/50 is back in force, audited as the reload and persisted.
    assert [v["weight"] for v in routes["routes"][0]["versions"]] == [50, 50]
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(entries) == before + 1
    assert entries[-1]["actor"] == "sighup" and entries[-1]["action"] == "routes.reload"
    assert entries[-1]["generation"] == generation + 1
    state = json.loads((root / "routes-state.json").read_text())
    assert [v["weight"] for v in state["routes"][0]["versions"]] == [50, 50]


@pytest.mark.parametrize("listen,env,message", [
    ("0.0.0.0:{port}", {}, "is reachable beyond loopback; set admin.token or SWITCHYARD_ADMIN_TOKEN"),
    ("127.0.0.1:{busy}", {}, "admin API stopped"),
])
def test_admin_port_refusals(tmp_path, listen, env, message):
    import socket

    from conftest import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        address = listen.format(port=free_port(), busy=busy.getsockname()[1])
        out = subprocess.run(
            [binary(), "serve", "--model-repository", str(MODELS), "--listen", f"127.0.0.1:{free_port()}", "--rest-listen", "",
             "--admin-listen", address],
            env={k: v for k, v in {**os.environ, **env}.items() if k != "SWITCHYARD_ADMIN_TOKEN"},
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode != 0
    assert message in out.stderr + out.stdout, out.stderr


def test_config_reload_call_validates_first(setup, request):
    start, root = setup
    gateway = getattr(request.module, "_gateway", None)
    if gateway is None or gateway.process.poll() is not None:
        gateway = request.module._gateway = start()
    config = root / "switchyard.yaml"
    original = config.read_text()
    before = admin(gateway, "GET", "/v1/routes")[1]
    try:
        config.write_text(original.replace("{version: 2, weight: 50}", "{version: 5, weight: 50}"))
        status, answer = admin(gateway, "POST", "/v1/config/reload")
        assert status == 400, answer
        assert "routes[0].versions[1].version: model 'digits' has no loaded version '5'" in answer["error"], answer
        assert admin(gateway, "GET", "/v1/routes")[1] == before
        assert admin(gateway, "POST", "/v1/config/reload", token=None)[0] == 401

        config.write_text(original.replace("{version: 1, weight: 50}", "{version: 1, weight: 20}"))
        status, answer = admin(gateway, "POST", "/v1/config/reload", headers={"X-Switchyard-Reason": "file edit"})
        assert status == 200, answer
        assert answer["generation"] == before["generation"] + 1
        assert [v["weight"] for v in answer["routes"][0]["versions"]] == [20, 50]
        entry = json.loads((root / "audit.jsonl").read_text().splitlines()[-1])
        assert (entry["action"], entry["actor"], entry["reason"]) == ("routes.reload", "e2e", "file edit")
    finally:
        config.write_text(original)


def test_config_file_watch_reloads_valid_changes_only(start_gateway, tmp_path):
    import time

    repository = copy_digits(tmp_path)
    config = tmp_path / "switchyard.yaml"
    template = """
routes:
  - model: digits
    policy: canary
    versions: [{{version: 1, weight: {w1}}}, {{version: {v2}, weight: 50}}]
admin:
  audit_log: {audit}
  watch_config: true
"""
    audit = tmp_path / "audit.jsonl"
    config.write_text(template.format(w1=50, v2=2, audit=audit))
    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    generation = admin(gateway, "GET", "/v1/routes", token=None)[1]["generation"]

    def wait_for(predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    # An invalid edit is refused with its reason in the log, and the running routes stay.
    config.write_text(template.format(w1=50, v2=8, audit=audit))
    assert wait_for(lambda: "no loaded version '8'" in gateway.output()), gateway.output()
    assert admin(gateway, "GET", "/v1/routes", token=None)[1]["generation"] == generation

    # A valid edit is in force within a few seconds, audited as the watcher's.
    config.write_text(template.format(w1=10, v2=2, audit=audit))
    assert wait_for(lambda: admin(gateway, "GET", "/v1/routes", token=None)[1]["generation"] == generation + 1)
    route = admin(gateway, "GET", "/v1/routes/digits", token=None)[1]["route"]
    assert [v["weight"] for v in route["versions"]] == [10, 50]
    entry = json.loads(audit.read_text().splitlines()[-1])
    assert (entry["actor"], entry["action"]) == ("config_watch", "routes.reload")
    gateway.stop()


def test_a_change_based_on_a_stale_read_gets_409_and_changes_nothing(setup, request):
    start, _ = setup
    gateway = getattr(request.module, "_gateway", None)
    if gateway is None or gateway.process.poll() is not None:
        gateway = request.module._gateway = start()
    read = admin(gateway, "GET", "/v1/routes/digits")[1]["generation"]
    # Based on what it read: applied.
    status, body = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 70, "2": 30}},
                         headers={"If-Match": f'"{read}"'})
    assert status == 200, body
    changed = body["generation"]
    # Another operator's change based on the same, now stale, read: 409 naming the change and the route now.
    status, body = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 10, "2": 90}},
                         headers={"If-Match": str(read)})
    assert status == 409, body
    assert f"changed at generation {changed}, after generation {read}" in body["error"], body
    assert "weights 1=70 2=30" in body["error"], body
    assert [v["weight"] for v in admin(gateway, "GET", "/v1/routes/digits")[1]["route"]["versions"]] == [70, 30]
    # A generation that is not one is refused before anything changes; the CLI sends a read generation too.
    assert admin(gateway, "DELETE", "/v1/routes/digits", headers={"If-Match": "x7"})[0] == 400
    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN)
    url = ["--admin", gateway.admin_url]
    out = subprocess.run([binary(), "routes", "weights", "digits", "1=1", "--if-generation", str(read), *url],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "HTTP 409" in out.stderr and "read it again" in out.stderr, out.stderr
    out = subprocess.run([binary(), "routes", "weights", "digits", "1=50", "2=50", "--if-generation", str(changed),
                          *url], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
