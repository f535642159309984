"""Fleet-wide bandits end to end: a real etcd and three gateway replicas. Every replica publishes the rewards its own
bandit routes observed with its leased aggregates, and absorbs its peers' new rewards at each round (250 ms), so a
bandit whose better arm is seen only in one replica's traffic is learned by all three; routing decisions still read
local state only. A Feedback/Report that lands on a replica that did not route the call is delivered to the one that
did (peers' admin addresses are in their leased presence keys) and answered APPLIED."""

import base64
import json
import socket
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_admin import PIXELS, TOKEN, admin
from test_fleet import ETCD, fresh_fleet
from test_rollout import make_repository
from test_routing import report, request
from tritonclient.grpc import service_pb2_grpc

pytestmark = pytest.mark.skipif(
    not __import__("os").path.exists(ETCD),
    reason="etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)",
)


@pytest.fixture()
def fleet(start_gateway, tmp_path):
    with fresh_fleet(start_gateway, tmp_path, make_repository(tmp_path), "/switchyard/bandit") as (_, replicas):
        yield replicas


def arms(gateway):
    code, body = admin(gateway, "GET", "/v1/bandits/digits")
    assert code == 200, body
    return {arm["version"]: arm for arm in body["arms"]}


def route_by_feedback_bandit(fleet, via, algorithm):
    """Puts a feedback bandit of `algorithm` over digits versions 1 and 2 through replica `via`; returns once every
    replica of `fleet` has the bandit."""
    code, body = admin(via, "PUT", "/v1/routes/digits", {
        "policy": "bandit", "versions": [{"version": "1"}, {"version": "2"}],
        "bandit": {"algorithm": algorithm, "reward": "feedback", "feedback_ttl_s": 60},
    })
    assert code == 200, body
    for gateway in fleet:
        deadline = time.time() + 5
        while admin(gateway, "GET", "/v1/bandits/digits")[0] != 200:
            assert time.time() < deadline, gateway.output()[-2000:]
            time.sleep(0.05)


def test_a_better_arm_seen_only_on_one_replica_is_learned_by_every_replica(fleet):
    a, b, c = fleet
    route_by_feedback_bandit(fleet, a, "thompson")
    # Only replica A serves and hears feedback: version 2 is right every time, version 1 never.
    served = {"1": 0, "2": 0}
    with grpc.insecure_channel(a.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for n in range(60):
            response = stub.ModelInfer(request(PIXELS[:1], request_id=f"fleet-bandit-{n}"), timeout=10)
            served[response.model_version] += 1
            outcome = report(channel, f"fleet-bandit-{n}", 1.0 if response.model_version == "2" else 0.0)
            assert outcome == "APPLIED"
    own = arms(a)
    assert own["2"]["rewards"] == served["2"] and own["1"]["rewards"] == served["1"]
    # B and C heard nothing themselves, yet hold A's evidence within a few rounds.
    for gateway in (b, c):
        deadline = time.time() + 5
        while True:
            seen = arms(gateway)
            if seen["2"]["observations"] >= served["2"] and seen["1"]["observations"] >= served["1"]:
                break
            assert time.time() < deadline, (seen, served, gateway.output()[-2000:])
            time.sleep(0.05)
        assert seen["1"]["rewards"] == 0 and seen["2"]["rewards"] == 0, seen
        assert seen["2"]["mean_reward"] == 1.0 and seen["1"]["mean_reward"] in (None, 0.0), seen
    # The fleet view on C shows A's calls per version, per replica and summed, from the same published aggregates.
    deadline = time.time() + 5
    while True:
        view = admin(c, "GET", "/v1/fleet")[1]
        traffic = {entry["version"]: entry for entry in view.get("versions", []) if entry["model"] == "digits"}
        if all(traffic.get(v, {}).get("calls", 0) >= served[v] for v in ("1", "2")):
            break
        assert time.time() < deadline, view
        time.sleep(0.05)
    for entry in traffic.values():
        assert entry["calls"] == sum(part["calls"] for part in entry["replicas"]), entry
        by_replica = {part["replica"]: part["calls"] for part in entry["replicas"]}
        assert by_replica.get("replica-b", 0) == 0 and by_replica.get("replica-c", 0) == 0, entry
    # And they route by it: B's own calls go to the arm A found better.
    with grpc.insecure_channel(b.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        versions = [stub.ModelInfer(request(PIXELS[:1], request_id=f"b-{n}"), timeout=10).model_version
                    for n in range(40)]
    assert versions.count("2") >= 36, versions


def test_feedback_sent_to_a_replica_that_did_not_route_the_call_is_applied_where_it_was(fleet):
    a, b, c = fleet
    route_by_feedback_bandit(fleet, b, "ucb1")
    # Peers find A through the admin address in its presence key.
    deadline = time.time() + 5
    while not all(replica["admin"] for replica in admin(b, "GET", "/v1/fleet")[1]["replicas"]):
        assert time.time() < deadline, admin(b, "GET", "/v1/fleet")[1]
        time.sleep(0.05)
    with grpc.insecure_channel(a.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for n in range(6):
            stub.ModelInfer(request(PIXELS[:1], request_id=f"routed-by-a-{n}"), timeout=10)
    before = sum(arm["rewards"] for arm in arms(a).values())
    # Each report lands on B or C, which never saw the call: it is delivered to A and answered APPLIED.
    for n in range(6):
        with grpc.insecure_channel((b, c)[n % 2].address) as channel:
            assert report(channel, f"routed-by-a-{n}", 1.0) == "APPLIED"
    assert sum(arm["rewards"] for arm in arms(a).values()) == before + 6
    assert sum(arm["rewards"] for arm in arms(b).values()) == 0
    with grpc.insecure_channel(c.address) as channel:
        # Already applied at A, and a call no replica routed: UNKNOWN, after asking the others.
        assert report(channel, "routed-by-a-0", 1.0) == "UNKNOWN"
        assert report(channel, "never-routed", 0.5) == "UNKNOWN"


def forwarding_counters(gateway):
    request = urllib.request.Request(gateway.admin_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    counters = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("switchyard_fleet_feedback_forwarded", "switchyard_fleet_feedback_peers"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counters[next(iter(sample.labels.values()))] = sample.value
    return counters


def test_feedback_no_replica_routed_asks_a_bounded_set_of_peers_at_once_and_is_counted(start_gateway, tmp_path):
    # Ten more "replicas" in the fleet's view whose admin port accepts connections and never answers: asked one after
    # another with a 2 s timeout each, a report for an id nobody routed would take 20 s.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    prefix = "/switchyard/bandit-bounds"
    with fresh_fleet(start_gateway, tmp_path, make_repository(tmp_path), prefix) as (etcd, (a, b, c)):
        for n in range(10):
            key = base64.b64encode(f"{prefix}/replicas/zz-silent-{n}".encode()).decode()
            value = json.dumps({"replica": f"zz-silent-{n}", "admin": f"127.0.0.1:{silent.getsockname()[1]}"})
            put = urllib.request.Request(etcd.endpoint + "/v3/kv/put", method="POST", data=json.dumps(
                {"key": key, "value": base64.b64encode(value.encode()).decode()}).encode())
            urllib.request.urlopen(put, timeout=5).read()
        # Every replica in the view, each with the admin address it publishes once it serves.
        deadline = time.time() + 10
        while True:
            listed = admin(c, "GET", "/v1/fleet")[1]["replicas"]
            if len(listed) == 13 and all(replica["admin"] for replica in listed):
                break
            assert time.time() < deadline, listed
            time.sleep(0.05)
        before = forwarding_counters(c)
        with grpc.insecure_channel(c.address) as channel:
            started = time.monotonic()
            assert report(channel, "never-routed", 0.5) == "UNKNOWN"
            took = time.monotonic() - started
        after = forwarding_counters(c)
        # At most 8 of the 12 peers asked, all at once, given up after 1 s; the rest counted as skipped.
        assert took < 3.0, f"the report took {took:.2f} s"
        assert after["asked"] - before.get("asked", 0) == 8, after
        assert after["skipped"] - before.get("skipped", 0) == 4, after
        # Only a and b answer (UNKNOWN); at least 6 of the 8 asked were silent and count as failed.
        assert after["failed"] - before.get("failed", 0) >= 6, after
        assert after["unknown"] - before.get("unknown", 0) == 1, after
        assert after["applied"] == before.get("applied", 0)
    silent.close()
