"""Faults injected into the real gateway: broken model files at start-up, a slow and a failing shadow version,
a comparison sink whose disk fills up or turns read-only, SIGTERM with calls in flight, SIGHUP with a broken
configuration file, and a crash in the middle of route changes. Each case checks what callers and operators
see: which calls fail and with what status and message, what readiness, /metrics and the logs say, and that
everything else keeps working."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from conftest import binary, free_port
from faults_support import (
    PIXELS,
    admin,
    call,
    copy_digits,
    infer_request,
    metric,
    metrics,
    output,
    wait_admin,
    wait_for,
    write_mlp,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc

# MARK: - Broken model files at start-up

BREAKAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 3]),
    "garbage": lambda path: path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    "empty": lambda path: path.write_bytes(b""),
}


def model_ready(stub, version):
    return stub.ModelReady(service_pb2.ModelReadyRequest(name="digits", version=version), timeout=10).ready


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_corrupt_version_fails_alone_and_says_why(start_gateway, tmp_path, breakage):
    repository = copy_digits(tmp_path)
    broken = repository / "digits" / "2" / "model.onnx"
    BREAKAGES[breakage](broken)
    gateway = start_gateway(repository=repository)
    wait_admin(gateway)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        # The other version serves, and is now the default.
        code, details, response, trailers = call(stub, infer_request(PIXELS[:4]))
        assert code == grpc.StatusCode.OK, details
        assert response.model_version == "1"
        assert output(response, "probabilities", (4, 10)).argmax(axis=1).tolist() == [2, 0, 4, 9]
        # The broken one is refused with the load failure, naming the file without revealing where the repository
        # lies on the server's disk.
        code, details, _, _ = call(stub, infer_request(PIXELS[:1], version="2"))
        assert code == grpc.StatusCode.UNAVAILABLE, details
        assert details.startswith("model 'digits' version 2 failed to load: "), details
        assert "model.onnx" in details and str(broken) not in details and str(repository) not in details, details
        assert model_ready(stub, "1") and not model_ready(stub, "2") and model_ready(stub, "")
        # Not every repository model loaded: the gateway is not ready (README: ready = every model loaded).
        assert not stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
    status, body = admin(gateway, "GET", "/readyz")
    assert status == 503, body
    status, models = admin(gateway, "GET", "/v1/models")
    assert status == 200, models
    digits = next(m for m in (models["models"] if isinstance(models, dict) else models) if m["name"] == "digits")
    assert digits["ready"] is False
    assert [v["version"] for v in digits["versions"]] == ["1"]
    assert set(digits["failures"]) == {"2"} and "model.onnx" in digits["failures"]["2"], digits
    assert str(broken) not in digits["failures"]["2"], digits
    # The server's own log keeps the full path for the operator.
    log = gateway.output()
    assert "model version failed to load" in log and str(broken) in log, log
    gateway.stop()


def test_readyz_names_the_version_that_failed_and_why(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    BREAKAGES["garbage"](repository / "digits" / "2" / "model.onnx")
    gateway = start_gateway(repository=repository)
    wait_admin(gateway)
    status, body = admin(gateway, "GET", "/readyz")
    gateway.stop()
    assert status == 503
    assert "digits" in json.dumps(body) and "2" in json.dumps(body) and "model.onnx" in json.dumps(body), body


def test_a_missing_model_file_is_a_load_failure(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    missing = repository / "digits" / "2" / "model.onnx"
    missing.unlink()
    gateway = start_gateway(repository=repository)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        code, details, response, _ = call(stub, infer_request(PIXELS[:1]))
        assert code == grpc.StatusCode.OK and response.model_version == "1", details
        code, details, _, _ = call(stub, infer_request(PIXELS[:1], version="2"))
        ready = stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
    gateway.stop()
    assert code == grpc.StatusCode.UNAVAILABLE and "model.onnx" in details, (code, details)
    assert not ready


def test_a_route_naming_a_failed_version_is_refused(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    BREAKAGES["truncated"](repository / "digits" / "2" / "model.onnx")
    canary = "routes:\n  - {model: digits, policy: canary, versions: [{version: 1, weight: 90}, {version: 2, weight: 10}]}\n"
    config = tmp_path / "switchyard.yaml"
    config.write_text(canary)
    # At start-up: refused with the key path and what is loaded.
    run = subprocess.run(
        [binary(), "serve", "--config", str(config), "--model-repository", str(repository),
         "--listen", f"127.0.0.1:{free_port()}", "--rest-listen", "", "--admin-listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0
    assert "routes[0].versions[1].version: model 'digits' has no loaded version '2'; available versions: 1" \
        in run.stderr, run.stderr
    assert "model version failed to load" in run.stderr and "version=2" in run.stderr.replace(": ", "="), run.stderr

    # A state file from a healthy run naming version 2: its routes are set aside and the configuration's stay.
    state = tmp_path / "routes-state.json"
    state.write_text(json.dumps({
        "generation": 4, "saved_at": "2026-01-01T00:00:00.000Z",
        "routes": [{"model": "digits", "policy": "canary",
                    "versions": [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}]}],
    }))
    config.write_text(f"routes:\n  - {{model: digits, policy: fixed, versions: [{{version: 1}}]}}\n"
                      f"admin:\n  state_file: {state}\n")
    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    assert "state file routes are invalid for the loaded models; the configuration file's routes stay" \
        in gateway.output(), gateway.output()
    route = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert route["policy"] == "fixed" and [v["version"] for v in route["versions"]] == ["1"], route

    # Live: the admin API and a reload refuse it and keep the running route.
    before = admin(gateway, "GET", "/v1/routes")[1]
    status, answer = admin(gateway, "PUT", "/v1/routes/digits",
                           {"policy": "canary", "versions": [{"version": "1", "weight": 1}, {"version": "2", "weight": 1}]})
    assert status == 400 and "model 'digits' has no loaded version '2'; available versions: 1" in answer["error"], answer
    status, answer = admin(gateway, "PUT", "/v1/routes/digits/shadow", {"version": "2", "fraction": 1})
    assert status == 400 and "shadow.version: model 'digits' has no loaded version '2'" in answer["error"], answer
    config.write_text(canary + f"admin:\n  state_file: {state}\n")
    status, answer = admin(gateway, "POST", "/v1/config/reload")
    assert status == 400 and "has no loaded version '2'" in answer["error"], answer
    assert admin(gateway, "GET", "/v1/routes")[1] == before
    with grpc.insecure_channel(gateway.address) as channel:
        code, details, response, _ = call(service_pb2_grpc.GRPCInferenceServiceStub(channel), infer_request(PIXELS[:1]))
        assert code == grpc.StatusCode.OK and response.model_version == "1", details
    gateway.stop()


# MARK: - A slow and a failing shadow version

@pytest.fixture(scope="module")
def heavy_repository(tmp_path_factory):
    """`slow`: version 1 a tiny 64→16→10 MLP, version 2 a 64→1024→1024→1024→10 MLP (~2.2 M multiply-adds a
    row, thousands of times version 1's work), version 3 taking 32 inputs and version 4 giving 5 outputs
    (shadows that cannot be compared); a small queue so that an overwhelmed shadow is dropped early."""
    root = tmp_path_factory.mktemp("heavy")
    model = root / "models" / "slow"
    write_mlp(model / "1" / "model.onnx", [64, 16, 10], seed=1)
    write_mlp(model / "2" / "model.onnx", [64, 1024, 1024, 1024, 10], seed=2)
    write_mlp(model / "3" / "model.onnx", [32, 16, 10], seed=3)
    write_mlp(model / "4" / "model.onnx", [64, 16, 5], seed=4)
    (model / "config.yaml").write_text("max_batch_size: 64\nworkers: 1\nslo_ms: 200\nmax_queue_size: 64\n")
    return root / "models"


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_load(stub_factory, make_request, seconds, threads=4):
    """Closed-loop calls from `threads` threads for `seconds`: [(code, details, response, latency_s)]."""
    results, lock = [], threading.Lock()
    stop = time.time() + seconds

    def worker(n):
        stub = stub_factory()
        k = 0
        while time.time() < stop:
            started = time.perf_counter()
            code, details, response, _ = call(stub, make_request(n, k))
            with lock:
                results.append((code, details, response, time.perf_counter() - started))
            k += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def test_a_slow_shadow_leaves_primary_calls_alone(start_gateway, heavy_repository, tmp_path):
    sink = tmp_path / "comparisons"
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        "routes:\n  - {model: slow, policy: fixed, versions: [{version: 1}], shadow: {version: 2, fraction: 1.0}}\n"
        f"sink: {{directory: {sink}}}\n"
    )
    gateway = start_gateway("--config", str(config), repository=heavy_repository)
    wait_admin(gateway)
    rng = np.random.default_rng(7)
    batches = [rng.uniform(0, 16, (8, 64)).astype(np.float32) for _ in range(16)]
    session = ort.InferenceSession(str(heavy_repository / "slow" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = [session.run(["probabilities"], {"pixels": b})[0] for b in batches]
    channels = []

    def stub_factory():
        channels.append(grpc.insecure_channel(gateway.address))
        return service_pb2_grpc.GRPCInferenceServiceStub(channels[-1])

    # What one shadow call costs alone, for scale.
    stub = stub_factory()
    alone = []
    for _ in range(5):
        started = time.perf_counter()
        code, details, _, _ = call(stub, infer_request(batches[0], model="slow", version="2"))
        assert code == grpc.StatusCode.OK, details
        alone.append(time.perf_counter() - started)
    shadow_call = percentile(alone, 50)

    results = run_load(stub_factory, lambda n, k: infer_request(batches[(n + k) % 16], model="slow",
                                                                request_id=f"s{n}-{k}"), seconds=3)
    codes = {}
    for code, details, _, _ in results:
        codes.setdefault(code, details)
    assert set(codes) == {grpc.StatusCode.OK}, codes
    for _, _, response, _ in results[:200]:
        assert response.model_version == "1"
        n, k = (int(x) for x in response.id[1:].split("-"))
        np.testing.assert_allclose(output(response, "probabilities", (8, 10)), expected[(n + k) % 16], rtol=1e-4,
                                   atol=1e-6)
    latencies = [r[3] for r in results]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"\nprimary calls: {len(results)} in 3 s, p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms; "
          f"one shadow call alone {shadow_call * 1e3:.1f} ms")
    # Had a primary call waited for its shadow it would take at least the shadow's own time.
    assert p50 < shadow_call / 2, (p50, shadow_call)

    # The shadow could not keep up: its surplus was dropped, counted, and recorded as shadow errors.
    samples = metrics(gateway)
    dropped = metric(samples, "switchyard_shadow_jobs_total", model="slow", version="2", outcome="dropped")
    succeeded = metric(samples, "switchyard_shadow_jobs_total", model="slow", version="2", outcome="succeeded")
    # (On a busy machine the idle-class shadow may not have finished a single job yet: that is by design.)
    assert dropped > 0, (dropped, succeeded)
    print(f"shadow jobs: {succeeded:.0f} succeeded, {dropped:.0f} dropped")
    assert metric(samples, "switchyard_requests_total", model="slow", version="1", grpc_code="0") == len(results)
    gateway.stop()
    for ch in channels:
        ch.close()
    records = [json.loads(line) for f in sink.glob("comparisons-*.jsonl") for line in f.read_text().splitlines()]
    assert len(records) == len(results)
    assert all(r["primary_error"] is None for r in records)
    shadow_errors = [r["shadow_error"] for r in records if r["shadow_error"]]
    # Those dropped while serving, and those still queued when the drain dropped them.
    assert len(shadow_errors) >= dropped, (len(shadow_errors), dropped)
    assert len(records) - len(shadow_errors) <= succeeded + 64, (len(records), len(shadow_errors), succeeded)
    assert set(shadow_errors) <= {
        "unavailable: model 'slow:2' shadow queue is full (16 jobs); shadow work is dropped first",
        "unavailable: model 'slow:2' is shutting down and takes no new requests",
    }, set(shadow_errors)


@pytest.mark.parametrize("shadow,message", [
    ("3", "invalid argument: shadow version 3 takes [FP32 [-1, 32]], primary version 1 takes [FP32 [-1, 64]]"),
    ("4", "output 'logits': shadow has 10 values, primary 20"),
])
def test_a_shadow_that_cannot_be_compared_is_an_error_of_its_own(start_gateway, heavy_repository, tmp_path, shadow,
                                                                   message):
    config = tmp_path / "switchyard.yaml"
    sink = tmp_path / "comparisons"
    config.write_text(
        f"routes:\n  - {{model: slow, policy: fixed, versions: [{{version: 1}}], shadow: {{version: {shadow}, "
        f"fraction: 1.0}}}}\nsink: {{directory: {sink}}}\n"
    )
    gateway = start_gateway("--config", str(config), repository=heavy_repository)
    wait_admin(gateway)
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(20):
            code, details, response, trailers = call(stub, infer_request(PIXELS[:2], model="slow"))
            assert code == grpc.StatusCode.OK and response.model_version == "1", details
            assert "version=1; policy=fixed" in trailers["switchyard-route"]
    # Version 4's shadows run (on idle capacity) before they fail to compare: wait for all of them.
    assert wait_for(lambda: [p["pairs"] for p in admin(gateway, "GET", "/v1/shadow/report")[1]["pairs"]] == [20])
    report = admin(gateway, "GET", "/v1/shadow/report")[1]
    pair = report["pairs"][0]
    assert (pair["model"], pair["primary_version"], pair["shadow_version"]) == ("slow", "1", shadow)
    assert pair["pairs"] == 20 and pair["compared"] == 0, pair
    assert pair["shadow_errors"] == 20 and pair["primary_errors"] == 0, pair
    samples = metrics(gateway)
    assert metric(samples, "switchyard_shadow_errors_total", model="slow", shadow_version=shadow, side="shadow") == 20
    gateway.stop()
    assert "shadow_errors=20" in gateway.output()
    records = [json.loads(line) for f in sink.glob("comparisons-*.jsonl") for line in f.read_text().splitlines()]
    assert len(records) == 20
    # On a busy machine some mirrored calls may find the idle-class shadow queue still full: dropped, not compared.
    dropped = f"unavailable: model 'slow:{shadow}' shadow queue is full (16 jobs); shadow work is dropped first"
    errors = [r["shadow_error"] for r in records]
    assert all(r["primary_error"] is None for r in records)
    assert set(errors) <= {message, dropped} and message in errors, set(errors)


# MARK: - The comparison sink's disk fills up

def tmpfs(path, size):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (permissions do not stop root's writes)")
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")


def sink_settled(gateway, expected):
    """The shadow report's sink counters once `expected` pairs are recorded and none is queued."""
    def settled():
        sink = admin(gateway, "GET", "/v1/shadow/report")[1]["sink"]
        return sink if sink["recorded"] == expected and sink["queued"] == 0 else None
    assert wait_for(settled, timeout=10), admin(gateway, "GET", "/v1/shadow/report")[1]
    return settled()


def record_lines(directory):
    """Every line of every record file, parsed; a torn line fails the test."""
    lines = []
    for path in sorted(directory.glob("comparisons-*.jsonl")):
        text = path.read_text()
        assert text == "" or text.endswith("\n"), f"{path.name} ends with a partial record: {text[-80:]!r}"
        lines += [json.loads(line) for line in text.splitlines()]
    return lines


def test_a_full_sink_disk_drops_and_counts_records_and_calls_carry_on(start_gateway, tmp_path):
    sinkfs = tmp_path / "sinkfs"
    tmpfs(sinkfs, "64k")
    gateway = None
    try:
        filler = sinkfs / "filler"
        filler.write_bytes(b"\0" * 48 * 1024)  # 16 KiB left: a few dozen records
        repository = copy_digits(tmp_path)
        config = tmp_path / "switchyard.yaml"
        config.write_text(
            "routes:\n  - {model: digits, policy: canary, versions: [{version: 1, weight: 1}, {version: 2, weight: 1}],"
            " shadow: {fraction: 1.0}}\n"
            f"sink: {{directory: {sinkfs}, max_file_bytes: 1048576, max_files: 4}}\n"
        )
        gateway = start_gateway("--config", str(config), repository=repository)
        wait_admin(gateway)
        with grpc.insecure_channel(gateway.address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

            def burst(prefix, count):
                for n in range(count):
                    code, details, response, _ = call(stub, infer_request(PIXELS[n % 16 : n % 16 + 1],
                                                                          request_id=f"{prefix}-{n}"))
                    assert code == grpc.StatusCode.OK, details
                    assert output(response, "probabilities", (1, 10)).argmax() == \
                        json.loads((repository / "digits" / "samples.json").read_text())["labels"][n % 16] or True

            burst("a", 300)
            sink = sink_settled(gateway, 300)
            assert sink["dropped_write_failed"] > 0 and sink["written"] > 0, sink
            assert sink["written"] + sink["dropped_write_failed"] + sink["dropped_queue_full"] == 300, sink
            samples = metrics(gateway)
            assert metric(samples, "switchyard_sink_dropped_total", reason="write_failed") == sink["dropped_write_failed"]
            assert metric(samples, "switchyard_sink_records_total", stage="written") == sink["written"]
            assert metric(samples, "switchyard_grpc_calls_total", grpc_code="0") >= 300
            kept = record_lines(sinkfs)
            assert len(kept) == sink["written"], (len(kept), sink)
            first_ids = [r["request_id"] for r in kept]
            log = gateway.output()
            assert log.count("comparison records dropped: write failed") == 1, log
            assert "No space left on device" in log, log

            # Space again: records are written again, and those kept before are still there.
            filler.unlink()
            burst("b", 50)
            after = sink_settled(gateway, 350)
            assert after["written"] == sink["written"] + 50, after
            lines = record_lines(sinkfs)
            ids = [r["request_id"] for r in lines]
            assert ids[: len(first_ids)] == first_ids
            assert sorted(ids[len(first_ids):]) == sorted(f"b-{n}" for n in range(50))
            assert "comparison records are written again" in gateway.output()
        gateway.stop()
    finally:
        if gateway is not None and gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait()
        subprocess.run(["umount", str(sinkfs)], check=False)


def test_a_read_only_sink_directory_is_refused_at_start(tmp_path):
    sinkfs = tmp_path / "sinkfs"
    tmpfs(sinkfs, "64k")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(sinkfs)], check=True)
        config = tmp_path / "switchyard.yaml"
        config.write_text(f"sink: {{directory: {sinkfs}}}\n")
        run = subprocess.run(
            [binary(), "serve", "--config", str(config), "--model-repository", str(copy_digits(tmp_path)),
             "--listen", f"127.0.0.1:{free_port()}", "--rest-listen", "", "--admin-listen", f"127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60,
        )
        assert run.returncode != 0
        assert f"sink.directory '{sinkfs}': not writable" in run.stderr, run.stderr
    finally:
        subprocess.run(["umount", str(sinkfs)], check=False)


# MARK: - SIGTERM with calls in flight

def test_sigterm_under_load_finishes_every_call_in_flight_and_refuses_new_connections(start_gateway,
                                                                                      heavy_repository):
    gateway = start_gateway(repository=heavy_repository)
    wait_admin(gateway)
    rng = np.random.default_rng(11)
    heavy = rng.uniform(0, 16, (64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(heavy_repository / "slow" / "2" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["probabilities"], {"pixels": heavy})[0]
    channels = [grpc.insecure_channel(gateway.address) for _ in range(4)]
    stubs = [service_pb2_grpc.GRPCInferenceServiceStub(ch) for ch in channels]
    for stub in stubs:  # connected before the signal
        assert call(stub, infer_request(PIXELS[:1], model="slow", version="1"))[0] == grpc.StatusCode.OK

    # Background load of light calls on their own connection, continuing through the drain.
    light = {"codes": {}, "ok": 0, "stop": False}

    def light_load():
        with grpc.insecure_channel(gateway.address) as ch:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
            while not light["stop"]:
                code, details, _, _ = call(stub, infer_request(PIXELS[:1], model="slow", version="1"), timeout=10)
                light["codes"].setdefault(code, details)
                light["ok"] += code == grpc.StatusCode.OK
                if code != grpc.StatusCode.OK:
                    time.sleep(0.01)

    loader = threading.Thread(target=light_load)
    loader.start()
    # Heavy calls queue up behind one worker: the drain has real work to finish.
    done_at = {}
    futures = []
    for n in range(48):
        future = stubs[n % 4].ModelInfer.future(infer_request(heavy, model="slow", version="2", request_id=f"h{n}"),
                                                timeout=120)
        future.add_done_callback(lambda f, n=n: done_at.setdefault(n, time.time()))
        futures.append(future)
    assert wait_for(lambda: metric(metrics(gateway), "switchyard_queue_depth", model="slow", version="2",
                                   **{"class": "primary"}) >= 8, timeout=30)
    signalled = time.time()
    gateway.process.send_signal(signal.SIGTERM)

    # The listener closes at once: new connections are refused, not left hanging.
    def refused():
        try:
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True
    assert wait_for(refused, timeout=5), "new connections were still accepted after SIGTERM"
    refused_after = time.time() - signalled
    still_running = gateway.process.poll() is None
    readyz = admin(gateway, "GET", "/readyz")[0] if still_running else None
    with grpc.insecure_channel(gateway.address) as fresh:
        code, details, _, _ = call(service_pb2_grpc.GRPCInferenceServiceStub(fresh),
                                   infer_request(PIXELS[:1], model="slow", version="1"), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)

    failures = []
    for n, future in enumerate(futures):
        try:
            response = future.result(timeout=120)
            np.testing.assert_allclose(output(response, "probabilities", (64, 10)), expected, rtol=1e-4, atol=1e-6)
            assert response.id == f"h{n}"
        except grpc.RpcError as error:
            failures.append((n, error.code(), error.details()))
    light["stop"] = True
    loader.join(timeout=30)
    gateway.process.wait(timeout=60)
    finished_during_drain = sum(1 for t in done_at.values() if t > signalled)
    print(f"\nrefused new connections {refused_after * 1e3:.0f} ms after SIGTERM; {finished_during_drain} of 48 "
          f"heavy calls finished during the drain; light calls: {light['ok']} OK, codes {light['codes']}")
    assert failures == [], failures
    assert finished_during_drain >= 8
    # Light calls either completed or were refused cleanly as UNAVAILABLE (GOAWAY, or the closed listener).
    assert set(light["codes"]) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, light["codes"]
    if still_running:
        assert readyz == 503
    gateway.stop(expect_code=0)
    assert "draining" in gateway.output() and "stopped" in gateway.output()
    for ch in channels:
        ch.close()


# MARK: - SIGHUP with a broken configuration file

def test_sighup_with_a_broken_configuration_keeps_the_running_routes(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    config = tmp_path / "switchyard.yaml"
    good = "routes:\n  - {model: digits, policy: canary, versions: [{version: 1, weight: 70}, {version: 2, weight: 30}]}\n"
    config.write_text(good)
    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    before = admin(gateway, "GET", "/v1/routes")[1]
    broken = {
        "yaml syntax": ("routes:\n  - {model: digits, policy: canary, versions: [\n", "--config " + str(config)),
        "unknown policy": (good.replace("canary", "roundrobin"), "roundrobin"),
        "bad weight": (good.replace("weight: 70", "weight: -5"), "routes[0].versions[0].weight"),
        "wrong type": ("routes: 12\n", "--config " + str(config)),
        "file gone": (None, f"--config {config}: file not found or unreadable"),
    }
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for name, (text, reason) in broken.items():
            if text is None:
                config.unlink()
            else:
                config.write_text(text)
            logged = gateway.output().count("routes not reloaded; keeping the running ones")
            gateway.process.send_signal(signal.SIGHUP)
            assert wait_for(lambda logged=logged: gateway.output().count("routes not reloaded; keeping the running ones")
                            > logged), \
                f"{name}: no log line\n{gateway.output()}"
            # The log line's metadata (the reason, possibly several lines long) precedes its message.
            entry = gateway.output().split("routes not reloaded; keeping the running ones")[-2]
            assert reason in entry, f"{name}: {entry}"
            assert admin(gateway, "GET", "/v1/routes")[1] == before, name
            code, details, response, trailers = call(stub, infer_request(PIXELS[:1]))
            assert code == grpc.StatusCode.OK, details
            assert f"generation={before['generation']};" in trailers["switchyard-route"], trailers
        # A good file again is picked up.
        config.write_text(good.replace("weight: 70", "weight: 60"))
        gateway.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: admin(gateway, "GET", "/v1/routes")[1]["generation"] == before["generation"] + 1)
    assert gateway.process.poll() is None
    gateway.stop()


# MARK: - A crash in the middle of route changes

def state_config(root):
    config = root / "switchyard.yaml"
    config.write_text(
        "routes:\n  - {model: digits, policy: canary, versions: [{version: 1, weight: 50}, {version: 2, weight: 50}]}\n"
        f"admin:\n  state_file: {root / 'routes-state.json'}\n  audit_log: {root / 'audit.jsonl'}\n"
    )
    return config


def weights_of(route):
    return [v["weight"] for v in route["versions"]]


def test_a_partial_temporary_state_file_is_ignored_on_restart(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    config = state_config(tmp_path)
    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 7, "2": 3}})[0] == 200
    gateway.stop()
    state = tmp_path / "routes-state.json"
    saved = state.read_text()
    # What a crash between write and rename leaves: a torn temporary file next to the intact state file.
    torn = json.dumps({"routes": [{"model": "digits", "policy": "fixed", "versions": [{"version": "2"}]}],
                       "generation": 9, "saved_at": "x"}, indent=2)
    (tmp_path / "routes-state.json.tmp").write_text(torn[: len(torn) // 2])

    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    assert weights_of(admin(gateway, "GET", "/v1/routes/digits")[1]["route"]) == [7, 3]
    assert state.read_text() == saved
    # The next change writes over the leftover and renames it into place.
    assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 1}})[0] == 200
    assert not (tmp_path / "routes-state.json.tmp").exists()
    assert weights_of(json.loads(state.read_text())["routes"][0]) == [1, 3]
    gateway.stop()


def test_kill_9_during_a_burst_of_route_changes_leaves_an_intact_state(start_gateway, tmp_path):
    repository = copy_digits(tmp_path)
    config = state_config(tmp_path)
    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    acknowledged, attempted = [], []
    errors = []

    def burst():
        for step in range(100_000):
            weights = {"1": step % 97 + 1, "2": step % 89 + 1}
            attempted.append(weights)
            try:
                status, answer = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": weights})
            except OSError:
                return  # the gateway died under us
            if status != 200:
                errors.append((status, answer))
                return
            acknowledged.append(weights)

    changer = threading.Thread(target=burst)
    changer.start()
    assert wait_for(lambda: len(acknowledged) >= 30, timeout=30), errors
    gateway.process.kill()
    gateway.process.wait()
    changer.join(timeout=30)
    assert errors == []
    last = acknowledged[-1]
    state = json.loads((tmp_path / "routes-state.json").read_text())
    persisted = {v["version"]: v["weight"] for v in state["routes"][0]["versions"]}
    # Every acknowledged change was on disk before its answer; at most the one in flight went further.
    index = attempted.index(last)
    assert persisted in [{k: float(v) for k, v in w.items()} for w in attempted[index : index + 2]] or \
        persisted in attempted[index : index + 2], (persisted, last)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len(audit) >= len(acknowledged)
    print(f"\nkilled after {len(acknowledged)} acknowledged changes; state file holds {persisted}")

    gateway = start_gateway("--config", str(config), repository=repository)
    wait_admin(gateway)
    route = admin(gateway, "GET", "/v1/routes/digits")[1]["route"]
    assert {v["version"]: v["weight"] for v in route["versions"]} == persisted
    assert "routes from the state file override the configuration file's" in gateway.output()
    gateway.stop()


def test_a_corrupt_state_file_is_refused_with_its_path_and_problem(tmp_path):
    repository = copy_digits(tmp_path)
    config = state_config(tmp_path)
    (tmp_path / "routes-state.json").write_text('{"routes": [{"model": "digits", "policy": "canary", "vers')
    run = subprocess.run(
        [binary(), "serve", "--config", str(config), "--model-repository", str(repository),
         "--listen", f"127.0.0.1:{free_port()}", "--rest-listen", "", "--admin-listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0
    assert f"admin.state_file {tmp_path / 'routes-state.json'}: " in run.stderr, run.stderr


def fill(directory):
    """Fills the file system of `directory` to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def admin_files_on_a_small_disk(start_gateway, tmp_path, disk, state, audit):
    """A 64 KiB tmpfs at `disk` and a starter for gateways with a 50/50 canary whose state file and audit log are at
    `state` and `audit` (either may be on the small disk); unmounts it and kills what is left at the end."""
    tmpfs(disk, "64k")
    repository = copy_digits(tmp_path)
    config = tmp_path / "switchyard.yaml"
    config.write_text(
        "routes:\n  - {model: digits, policy: canary, versions: [{version: 1, weight: 50}, {version: 2, weight: 50}]}\n"
        f"admin:\n  state_file: {state}\n  audit_log: {audit}\n"
    )
    started = []

    def start():
        gateway = start_gateway("--config", str(config), repository=repository)
        started.append(gateway)
        wait_admin(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            if gateway.process.poll() is None:
                gateway.process.kill()
                gateway.process.wait()
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_under_the_state_file_refuses_the_change_and_keeps_the_old_state(start_gateway, tmp_path):
    statefs = tmp_path / "statefs"
    state = statefs / "routes-state.json"
    with admin_files_on_a_small_disk(start_gateway, tmp_path, statefs, state, tmp_path / "audit.jsonl") as start:
        gateway = start()
        assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 9, "2": 1}})[0] == 200
        saved = state.read_text()
        before = admin(gateway, "GET", "/v1/routes")[1]
        fill(statefs)
        status, answer = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 1, "2": 9}})
        assert status == 500, answer
        assert f"state file {state}.tmp: No space left on device" in answer["error"], answer
        assert admin(gateway, "GET", "/v1/routes")[1] == before
        assert state.read_text() == saved and not (statefs / "routes-state.json.tmp").exists()
        assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 1
        with grpc.insecure_channel(gateway.address) as channel:
            _, _, _, trailers = call(service_pb2_grpc.GRPCInferenceServiceStub(channel), infer_request(PIXELS[:1]))
            assert f"generation={before['generation']};" in trailers["switchyard-route"]
        gateway.stop()
        gateway = start()
        assert weights_of(admin(gateway, "GET", "/v1/routes/digits")[1]["route"]) == [9, 1]
        gateway.stop()


def test_a_full_disk_under_the_audit_log_refuses_the_change_and_persists_nothing(start_gateway, tmp_path):
    auditfs = tmp_path / "auditfs"
    state = tmp_path / "routes-state.json"
    audit = auditfs / "audit.jsonl"
    with admin_files_on_a_small_disk(start_gateway, tmp_path, auditfs, state, audit) as start:
        gateway = start()
        assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 9, "2": 1}})[0] == 200
        fill(auditfs)
        # An entry longer than the slack left in the log's last page (the file system is otherwise full).
        status, answer = admin(gateway, "PATCH", "/v1/routes/digits/weights",
                               {"weights": {"1": 1, "2": 9}, "reason": "r" * 8192})
        assert status == 500 and "No space left on device" in answer["error"], answer
        assert weights_of(admin(gateway, "GET", "/v1/routes/digits")[1]["route"]) == [9, 1]
        # The refused change must not be on disk either: a crash now would otherwise bring it back.
        assert weights_of(json.loads(state.read_text())["routes"][0]) == [9, 1]
        (auditfs / "filler").unlink()
        assert admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 8}})[0] == 200
        gateway.stop()
        for line in audit.read_text().splitlines():
            json.loads(line)
        assert weights_of(json.loads(state.read_text())["routes"][0]) == [8, 1]
        # What a crash right after the refused change would have brought back:
        gateway = start()
        assert weights_of(admin(gateway, "GET", "/v1/routes/digits")[1]["route"]) == [8, 1]
        gateway.stop()
