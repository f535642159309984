"""Fleet rollouts end to end: a real etcd and three gateway replicas. One replica, elected through its etcd lease,
drives each rollout on the fleet's window (the sum of the counters every replica publishes). A broken canary whose
failing calls all land on replicas other than the leader is rolled back on that fleet evidence; killing the leader
with SIGKILL in the middle of a step hands the rollout to another replica, which continues the same step (same
start, same counters) and completes it. An operator's route change on a held route is refused by every replica.
While etcd is away the rollout holds (no step is decided on what cannot be read) and traffic keeps its weights; it
resumes once etcd returns. Drift gates judge the worst replica's latest drift reading."""

import signal
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from test_admin import admin
from test_drift import SHIFTED, WINDOW, drift_gated_repository, send_routed
from test_fleet import ETCD, fresh_fleet, wait_connected
from test_rollout import Load, make_repository

pytestmark = pytest.mark.skipif(
    not __import__("os").path.exists(ETCD),
    reason="etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)",
)


@pytest.fixture()
def store_and_fleet(start_gateway, tmp_path):
    with fresh_fleet(start_gateway, tmp_path, make_repository(tmp_path, broken="3"), "/switchyard/rollout") as both:
        yield both


@pytest.fixture()
def fleet(store_and_fleet):
    return store_and_fleet[1]


def status(gateway):
    code, body = admin(gateway, "GET", "/v1/rollouts/digits")
    assert code == 200, body
    return body


def wait_for(gateway, predicate, what, timeout=30.0):
    deadline = time.time() + timeout
    body = None
    while time.time() < deadline:
        body = status(gateway)
        if predicate(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout}s: {body}\n{gateway.output()[-3000:]}")


def by_name(replicas):
    return {f"replica-{name}": gateway for name, gateway in zip("abc", replicas)}


def test_a_failing_canary_is_rolled_back_on_evidence_from_replicas_other_than_the_leader(fleet):
    a, b, c = fleet
    code, started = admin(a, "POST", "/v1/rollouts/digits", {
        "baseline": "2", "canary": "3", "steps": [50, 100], "step_seconds": 60,
        "gates": {"max_error_rate": 0.2, "min_requests": 20},
    })
    assert code == 201, started
    leader = wait_for(b, lambda s: s["fleet"].get("leader"), "a rollout leader")["fleet"].get("leader")
    others = [gateway for name, gateway in by_name(fleet).items() if name != leader]
    # Every replica sees the same rollout and refuses a manual change of the held route.
    for gateway in fleet:
        assert status(gateway)["canary_weight"] == 50
        code, body = admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": {"2": 100, "3": 0}})
        assert code == 409 and "held" in body["error"], body
    with Load(others[0]), Load(others[1]):
        final = wait_for(c, lambda s: s["phase"] == "rolled_back", "the rollback")
    # The leader served no call at all: it judged the canary on the other replicas' published counters.
    assert "gate max_error_rate failed" in final["detail"], final
    assert f"judged by {leader}" in final["detail"], final
    rollback = [event for event in final["events"] if event["event"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["canary_weight"] == 0, final["events"]
    for gateway in fleet:
        route = admin(gateway, "GET", "/v1/routes/digits")[1]
        weights = {v["version"]: v["weight"] for v in route["route"]["versions"]}
        assert weights == {"2": 100, "3": 0}, route
    # The hold ended with the rollout: operators change the route again.
    code, body = admin(b, "PATCH", "/v1/routes/digits/weights", {"weights": {"2": 90, "3": 10}})
    assert code == 200, body


def test_killing_the_leader_mid_step_hands_the_same_step_to_another_replica(fleet):
    a, _, _ = fleet
    code, started = admin(a, "POST", "/v1/rollouts/digits", {
        "baseline": "1", "canary": "2", "steps": [25, 50, 100], "step_seconds": 5,
        "gates": {"max_error_rate": 0.5, "min_requests": 5},
    })
    assert code == 201, started
    names = by_name(fleet)
    leader = wait_for(a, lambda s: s["fleet"].get("leader"), "a rollout leader")["fleet"].get("leader")
    survivors = [gateway for name, gateway in names.items() if name != leader]
    with Load(survivors[0]), Load(survivors[1]):
        before = wait_for(survivors[0], lambda s: s["step"] == 2, "the advance to step 2", timeout=40)
        names[leader].process.send_signal(signal.SIGKILL)
        names[leader].process.wait(timeout=10)
        killed = time.monotonic()
        after = wait_for(survivors[0], lambda s: s["fleet"].get("leader") not in (None, leader), "a new leader",
                         timeout=15)
        took_over = time.monotonic() - killed
        print(f"leader {leader} killed; {after['fleet'].get('leader')} leads {took_over:.2f} s later, step {after['step']}")
        done = wait_for(survivors[1], lambda s: s["phase"] == "completed", "the completion", timeout=40)
    # Another replica took over within the lease TTL (3 s) and a few ticks, in the same step, whose start it kept.
    assert took_over < 3 + 2, took_over
    if after["phase"] == "running" and after["step"] == 2:
        assert after["window"]["elapsed_s"] >= before["window"]["elapsed_s"] + took_over - 0.5, (before, after)
    advances = [event for event in done["events"] if event["event"] == "advance"]
    assert [event["canary_weight"] for event in advances] == [50, 100], done["events"]
    assert done["canary_weight"] == 100 and done["fleet"].get("leader") != leader
    # The dead replica's published counters left with its lease, as its leadership did.
    assert leader not in {replica["replica"] for replica in after["fleet"]["replicas"]}, after


def test_a_rollout_holds_while_the_store_is_away_and_resumes_when_it_returns(store_and_fleet):
    etcd, (a, b, c) = store_and_fleet
    code, started = admin(a, "POST", "/v1/rollouts/digits", {
        "baseline": "1", "canary": "2", "steps": [50, 100], "step_seconds": 2,
        "gates": {"max_error_rate": 0.5, "min_requests": 5},
    })
    assert code == 201, started
    with Load(a) as load_a, Load(b) as load_b:
        wait_for(c, lambda s: s["window"]["calls"] >= 5, "canary calls in step 1")
        etcd.stop()
        # Longer than the step: with the store away nothing advances, and the status says why it cannot be read.
        time.sleep(4)
        code, answer = admin(b, "GET", "/v1/rollouts/digits")
        assert code == 503 and "etcd" in answer["error"], answer
        route = admin(c, "GET", "/v1/routes/digits")[1]["route"]
        assert [v["weight"] for v in route["versions"]] == [50, 50], route
        etcd.start()
        for gateway in (a, b, c):
            wait_connected(gateway, 1)
        done = wait_for(c, lambda s: s["phase"] == "completed", "the completion after the store returned")
    assert not load_a.failures and not load_b.failures, (load_a.failures[:3], load_b.failures[:3])
    assert [event["event"] for event in done["events"]] == ["start", "advance", "complete"], done["events"]


def test_a_drift_gate_judges_the_worst_replica_of_the_fleet(start_gateway, tmp_path):
    """Drift detectors score the traffic each replica serves; the leader judges the fleet's rollout on the worst
    replica's latest reading, so one replica whose canary traffic drifted rolls the rollout back, named in the
    detail."""
    rng = np.random.default_rng(11)
    root = drift_gated_repository(tmp_path, rng)
    with fresh_fleet(start_gateway, tmp_path, root, "/switchyard/drift") as (_, replicas):
        a, b, c = replicas
        code, body = admin(a, "POST", "/v1/rollouts/digits", {
            "baseline": "2", "canary": "1", "steps": [50, 100], "step_seconds": 600,
            "gates": {"max_input_drift": 0.3}})
        assert code == 400 and "version 1 has none" in body["error"], body
        code, started = admin(a, "POST", "/v1/rollouts/digits", {
            "baseline": "1", "canary": "2", "steps": [50, 100], "step_seconds": 600,
            "gates": {"max_input_drift": 0.3, "min_requests": 1}})
        assert code == 201, started
        # Reference-like traffic on replica b, shifted traffic on replica c only.
        calm = rng.uniform(0, 16, size=(3 * WINDOW, 64)).astype(np.float32)
        shifted = rng.uniform(0, 16, size=(6 * WINDOW, 64)).astype(np.float32)
        shifted[:, SHIFTED] += 8
        for gateway, pixels in ((b, calm), (c, shifted)):
            client = grpcclient.InferenceServerClient(gateway.address)
            send_routed(client, pixels)
            client.close()
        final = wait_for(a, lambda s: s["phase"] == "rolled_back", "the drift rollback", timeout=60)
        assert "gate max_input_drift failed" in final["detail"], final
        assert f"'pixels[{SHIFTED}] on replica-c'" in final["detail"], final
        for gateway in replicas:
            route = admin(gateway, "GET", "/v1/routes/digits")[1]
            assert {v["version"]: v["weight"] for v in route["route"]["versions"]} == {"1": 100, "2": 0}, route
