"""Drift detection and payload capture through the real gateway: reference-like traffic, then traffic with one
feature shifted, must flag that feature (and only among the inputs) in /v1/drift and /metrics; the captured
JSON Lines and .npy files must load with numpy and hold exactly what was sent."""

import json
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conftest import MODELS
from faults_support import admin, wait_admin, wait_value

SHIFTED = 10
ROWS_PER_CALL = 50
WINDOW = 1000


def get(gateway, path):
    with urllib.request.urlopen(gateway.admin_url + path, timeout=10) as response:
        body = response.read().decode()
        return json.loads(body) if path.startswith("/v1/") else body


def repository(tmp_path, config):
    root = tmp_path / "models"
    shutil.copytree(MODELS / "digits", root / "digits")
    (root / "digits" / "config.yaml").write_text(config)
    return root


def send(client, pixels, prefix):
    for start in range(0, len(pixels), ROWS_PER_CALL):
        batch = pixels[start:start + ROWS_PER_CALL]
        inp = grpcclient.InferInput("pixels", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch)
        client.infer("digits", [inp], model_version="2", request_id=f"{prefix}-{start}",
                     headers={"traceparent": f"00-4bf92f3577b34da6a3ce929d0e0e{start:04x}-00f067aa0ba902b7-01"})


def drift_gated_repository(tmp_path, rng, capture=""):
    """digits with a drift detector on version 2 only (a 1000-row window in 4 blocks), its reference drawn from the
    uniform distribution the calm traffic follows; `capture` is a `capture:` section for the model's configuration."""
    root = repository(tmp_path, f"""
max_batch_size: 64
workers: 1
{capture}drift:
  reference: reference.npy
  window: {WINDOW}
  blocks: 4
  versions: ["2"]
  max_cpu_share: null
""")
    np.save(root / "digits" / "reference.npy", rng.uniform(0, 16, size=(5000, 64)).astype(np.float32))
    return root


def test_shifted_feature_is_flagged_and_payloads_are_captured(start_gateway, tmp_path):
    rng = np.random.default_rng(21)
    root = drift_gated_repository(tmp_path, rng, capture="""\
capture:
  fraction: 1
  directory: captured
  npy_batch_calls: 8
  redact: []
""")
    gateway = start_gateway(repository=root)
    client = grpcclient.InferenceServerClient(gateway.address)

    calm = rng.uniform(0, 16, size=(WINDOW, 64)).astype(np.float32)
    send(client, calm, "calm")
    report = wait_value(lambda: next((v for v in get(gateway, "/v1/drift/digits")["versions"]
                                      if v["window_rows"] >= WINDOW and v["status"] != "warming_up"), None))
    assert report["version"] == "2"
    assert report["inputs_flagged"] == 0, report["features"][:3]

    shifted = rng.uniform(0, 16, size=(WINDOW, 64)).astype(np.float32)
    shifted[:, SHIFTED] += 8
    send(client, shifted, "shifted")

    def drifting():
        versions = get(gateway, "/v1/drift/digits")["versions"]
        return versions[0] if versions and versions[0]["status"] == "drifting" and versions[0]["rows_observed"] >= 2 * WINDOW else None

    report = wait_value(drifting)
    flagged_inputs = [f["name"] for f in report["features"] if f["flagged"] and f["kind"] == "input"]
    assert report["inputs_flagged"] == 1
    assert flagged_inputs == [f"pixels[{SHIFTED}]"]
    # Most drifting first: the shifted input is among the flagged features at the head of the list.
    assert f"pixels[{SHIFTED}]" in [f["name"] for f in report["features"][:report["inputs_flagged"] + report["outputs_flagged"]]]
    top = next(f for f in report["features"] if f["name"] == f"pixels[{SHIFTED}]")
    assert top["test"] == "ks" and top["p_value"] < 1e-20
    assert len(top["bins"]) == len(top["reference"]) == len(top["current"])
    # Half the shifted values lie above anything the reference saw: the outer bin holds them.
    assert top["current"][-1] > 0.4 and top["reference"][-1] == 0

    metrics = get(gateway, "/metrics")
    line = next(candidate for candidate in metrics.splitlines()
                if candidate.startswith(f'switchyard_feature_drift{{model="digits",version="2",feature="pixels[{SHIFTED}]",test="ks"}}'))
    assert float(line.split()[-1]) > 0.4
    assert 'switchyard_drift_status{model="digits",version="2"} 1' in metrics
    assert 'switchyard_monitor_dropped_total{reason="queue_full"} 0' in metrics

    # Version 1 is not watched (drift.versions) but is captured.
    one = np.ones((2, 64), dtype=np.float32)
    inp = grpcclient.InferInput("pixels", [2, 64], "FP32")
    inp.set_data_from_numpy(one)
    client.infer("digits", [inp], model_version="1", request_id="v1-call")
    client.close()
    gateway.stop()

    captured = root / "digits" / "captured" / "digits" / "2"
    sent = np.concatenate([calm, shifted])
    batches = sorted(captured.glob("inputs.pixels-*.npy"))
    assert batches, list(captured.iterdir())
    loaded = np.concatenate([np.load(path) for path in batches])
    np.testing.assert_array_equal(loaded, sent)
    outputs = sorted(captured.glob("outputs.*-*.npy"))
    assert outputs and all(np.load(path).shape[0] > 0 for path in outputs)

    records = [json.loads(line) for path in sorted(captured.glob("calls-*.jsonl")) for line in path.read_text().splitlines()]
    assert len(records) == 2 * WINDOW // ROWS_PER_CALL
    first = records[0]
    assert first["id"] == "calm-0" and first["model"] == "digits" and first["version"] == "2"
    assert first["route"] == "explicit" and first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e0000"
    assert first["latency_ns"] > 0 and first["rows"] == ROWS_PER_CALL
    data = np.asarray(first["inputs"]["pixels"]["data"], dtype=np.float32).reshape(first["inputs"]["pixels"]["shape"])
    np.testing.assert_array_equal(data, calm[:ROWS_PER_CALL])
    for name, tensor in first["outputs"].items():
        batch = np.load(captured / f"outputs.{name}-{first['npy_batch']:06d}.npy")
        np.testing.assert_allclose(np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"]),
                                   batch[first["npy_row"]:first["npy_row"] + ROWS_PER_CALL], rtol=1e-6)
    assert (root / "digits" / "captured" / "digits" / "1" / "calls-000001.jsonl").exists()


def test_a_reference_of_the_wrong_width_refuses_to_start(start_gateway, tmp_path):
    root = repository(tmp_path, "drift:\n  reference: reference.npy\n")
    np.save(root / "digits" / "reference.npy", np.zeros((10, 63), dtype=np.float32))
    with pytest.raises(AssertionError) as excinfo:
        start_gateway(repository=root)
    assert "expected [rows, 64]" in str(excinfo.value) and "got shape [10, 63]" in str(excinfo.value)


def send_routed(client, pixels):
    """Calls without a version: the route (here a rollout's canary split) picks one per call."""
    for start in range(0, len(pixels), ROWS_PER_CALL):
        batch = pixels[start:start + ROWS_PER_CALL]
        inp = grpcclient.InferInput("pixels", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch)
        client.infer("digits", [inp])


def test_a_drifting_canary_is_rolled_back_by_the_drift_gate(start_gateway, tmp_path):
    rng = np.random.default_rng(5)
    root = drift_gated_repository(tmp_path, rng)
    gateway = start_gateway(repository=root)
    wait_admin(gateway)

    # Version 1 has no drift detection: a drift gate on it is refused, naming what is missing.
    status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {
        "baseline": "2", "canary": "1", "steps": [50, 100], "step_seconds": 1,
        "gates": {"max_input_drift": 0.3}})
    assert status == 400, answer
    assert "max_input_drift" in answer["error"] and "version 1 has none" in answer["error"]

    status, answer = admin(gateway, "POST", "/v1/rollouts/digits", {
        "baseline": "1", "canary": "2", "steps": [50, 100], "step_seconds": 600,
        "gates": {"max_input_drift": 0.3, "min_requests": 1}})
    assert status in (200, 201), answer
    client = grpcclient.InferenceServerClient(gateway.address)
    shifted = rng.uniform(0, 16, size=(6 * WINDOW, 64)).astype(np.float32)
    shifted[:, SHIFTED] += 8
    send_routed(client, shifted)
    client.close()

    def rolled_back():
        rollout = admin(gateway, "GET", "/v1/rollouts/digits")[1]
        return rollout if rollout["phase"] == "rolled_back" else None

    rollout = wait_value(rolled_back)
    assert "gate max_input_drift failed" in rollout["detail"], rollout["detail"]
    assert f"'pixels[{SHIFTED}]'" in rollout["detail"], rollout["detail"]
    assert rollout["canary_weight"] == 0


def test_the_cpu_budget_lowers_the_share_of_calls_observed_and_says_so(start_gateway, tmp_path):
    """With `max_cpu_share` far below what observing every call costs, the monitor observes a smaller share of
    calls within a few seconds of steady traffic, and reports the share in /v1/drift and /metrics."""
    root = repository(tmp_path, """
max_batch_size: 64
workers: 1
drift:
  reference_rows: 100
  window: 1000
  max_cpu_share: 0.0001
""")
    gateway = start_gateway(repository=root)
    client = grpcclient.InferenceServerClient(gateway.address)
    rng = np.random.default_rng(3)
    row = rng.uniform(0, 16, size=(1, 64)).astype(np.float32)
    inp = grpcclient.InferInput("pixels", [1, 64], "FP32")
    inp.set_data_from_numpy(row)
    deadline = time.time() + 30
    fraction = 1.0
    while time.time() < deadline and fraction >= 0.5:
        for _ in range(200):
            client.infer("digits", [inp])
        versions = get(gateway, "/v1/drift/digits")["versions"]
        fraction = versions[0]["observed_fraction"] if versions else 1.0
    assert fraction < 0.5, f"the observed share stayed at {fraction}"
    assert fraction >= 0.001
    served = versions[0]["version"]
    metrics = get(gateway, "/metrics")
    line = next(text for text in metrics.splitlines()
                if text.startswith(f'switchyard_drift_observed_fraction{{model="digits",version="{served}"}}'))
    assert float(line.split()[-1]) < 0.5, line
