"""Configuration reloads in fleet mode, against one real etcd and three replicas that watch their configuration
files: a reload is one guarded etcd transaction with its `routes.reload` audit record, in force on every replica at
its revision — never a change of one replica alone. It writes only the routes the file changed since the replica last
read it (live changes made through the admin API stay), a file change that the fleet already has writes nothing (the
same ConfigMap reaching every pod makes one change), a route held by a rollout refuses it with 409, and an invalid
file changes nothing."""

import base64
import json
import os
import subprocess
import time
import urllib.request

import pytest
from conftest import binary
from faults_support import copy_digits
from test_admin import admin, wait_admin
from test_fleet import ETCD, fresh_fleet, replica_config, trailer

pytestmark = pytest.mark.skipif(
    not os.path.exists(ETCD), reason="etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)"
)

PREFIX = "/switchyard/reload"
# Replicas that reload their configuration files when they change.
WATCH = "  watch_config: true\n"


def write_config(path, name, endpoint, weights):
    path.write_text(replica_config(name, [endpoint], PREFIX, weights, WATCH))


def etcd_call(etcd, path, body):
    request = urllib.request.Request(etcd.endpoint + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def b64(text):
    return base64.b64encode(text.encode()).decode()


def audits(etcd):
    """The fleet's audit records, oldest first."""
    answer = etcd_call(etcd, "/v3/kv/range", {"key": b64(f"{PREFIX}/audit/"), "range_end": b64(f"{PREFIX}/audit0")})
    return [json.loads(base64.b64decode(kv["value"])) for kv in answer.get("kvs", [])]


def weights(gateway):
    status, body = admin(gateway, "GET", "/v1/routes/digits")
    assert status == 200, body
    return body["generation"], [v["weight"] for v in body["route"]["versions"]]


def wait_weights(gateways, expected, timeout=10):
    """Waits until every replica's route has `expected` weights; returns the generation they share."""
    deadline = time.time() + timeout
    while True:
        seen = [weights(gateway) for gateway in gateways]
        if all(w == expected for _, w in seen) and len({g for g, _ in seen}) == 1:
            generation = seen[0][0]
            for gateway in gateways:  # and calls are served under it
                assert int(trailer(gateway)["generation"]) == generation
            return generation
        assert time.time() < deadline, f"replicas never converged on {expected}: {seen}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet(start_gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-reload")
    with fresh_fleet(start_gateway, root, copy_digits(root), PREFIX, admin_keys=WATCH) as (etcd, replicas):
        yield etcd, replicas, [root / f"{name}.yaml" for name in ("a", "b", "c")]


def test_a_file_change_is_one_fleet_transaction_that_keeps_live_changes_elsewhere(fleet):
    etcd, (a, b, c), (config_a, config_b, config_c) = fleet
    endpoint = etcd.endpoint
    wait_weights((a, b, c), [50, 50])

    # The file changes on B (its ConfigMap reached B first): B's watcher writes the change to the fleet, in force on
    # every replica at one generation, with its audit record.
    write_config(config_b, "b", endpoint, (20, 80))
    changed = wait_weights((a, b, c), [20, 80])
    record = audits(etcd)[-1]
    assert record["action"] == "routes.reload", record
    assert record["actor"] == "config_watch" and record["replica"] == "replica-b", record
    assert [[v["weight"] for v in r["versions"]] for r in record["newRoutes"]] == [[20, 80]], record
    assert [[v["weight"] for v in r["versions"]] for r in record["oldRoutes"]] == [[50, 50]], record
    assert "fleet mode: the file changed the routes of" in b.output()

    # The same change reaches A and C later: the fleet already has it, so nothing is written again.
    count = len(audits(etcd))
    write_config(config_a, "a", endpoint, (20, 80))
    write_config(config_c, "c", endpoint, (20, 80))
    time.sleep(2.5)
    assert len(audits(etcd)) == count
    assert wait_weights((a, b, c), [20, 80]) == changed

    # A live change through the admin API; an explicit reload on A, whose file did not change since, keeps it.
    status, body = admin(c, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 60, "2": 40}})
    assert status == 200, body
    live = wait_weights((a, b, c), [60, 40])
    status, body = admin(a, "POST", "/v1/config/reload")
    assert status == 200, body
    assert body["generation"] == live
    assert wait_weights((a, b, c), [60, 40]) == live
    assert audits(etcd)[-1]["action"] == "route.weights"


def test_a_route_held_by_a_rollout_refuses_the_reload_and_an_invalid_file_changes_nothing(fleet):
    etcd, (a, b, c), (config_a, config_b, _) = fleet
    generation, now = weights(a)
    hold = {"key": b64(f"{PREFIX}/holds/digits"), "value": b64("a rollout of version 2 is in progress")}
    etcd_call(etcd, "/v3/kv/put", hold)
    try:
        write_config(config_b, "b", etcd.endpoint, (5, 95))
        status, body = admin(b, "POST", "/v1/config/reload")
        assert status == 409, body
        assert "the route of 'digits' is held: a rollout of version 2 is in progress" in json.dumps(body), body
        assert weights(c) == (generation, now)
    finally:
        etcd_call(etcd, "/v3/kv/deleterange", {"key": hold["key"]})
    # Once the hold is gone the same file goes through (the watcher or this reload, whichever comes first).
    status, body = admin(b, "POST", "/v1/config/reload")
    assert status == 200, body
    wait_weights((a, b, c), [5, 95])

    # An invalid file: refused with what is wrong, nothing written.
    count = len(audits(etcd))
    before = weights(a)
    config_a.write_text(config_a.read_text().replace("version: 2, weight", "version: 9, weight"))
    status, body = admin(a, "POST", "/v1/config/reload")
    assert status == 400, body
    assert "routes[0].versions[1].version: model 'digits' has no loaded version '9'" in body["error"], body
    time.sleep(1.5)  # the watcher saw it too, and refused it
    assert weights(a) == before and len(audits(etcd)) == count
    assert "routes not reloaded; keeping the running ones" in a.output()


def test_a_replica_publishes_the_admin_address_it_advertises_and_refuses_a_wildcard(fleet, start_gateway, tmp_path):
    etcd, (a, _, _), _ = fleet
    config = tmp_path / "d.yaml"
    write_config(config, "d", etcd.endpoint, (50, 50))
    repository = copy_digits(tmp_path)
    # Peers are sent where a replica says it can be reached, not to its listen address.
    d = start_gateway("--config", str(config), "--advertise-admin", "127.0.0.2:8002", repository=repository)
    wait_admin(d)
    try:
        deadline = time.time() + 10
        while True:
            listed = {r["replica"]: r for r in admin(a, "GET", "/v1/fleet")[1]["replicas"]}
            if listed.get("replica-d", {}).get("admin"):
                break
            assert time.time() < deadline, listed
            time.sleep(0.05)
        assert listed["replica-d"]["admin"] == "127.0.0.2:8002", listed["replica-d"]
    finally:
        d.stop()
    # A wildcard cannot be reached by peers: refused, naming it.
    out = subprocess.run(
        [binary(), "serve", "--config", str(config), "--model-repository", str(repository), "--listen", "127.0.0.1:0",
         "--rest-listen", "", "--admin-listen", "127.0.0.1:0", "--advertise-admin", "0.0.0.0:8002"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "--advertise-admin: '0.0.0.0:8002' is a wildcard address, which peers cannot reach" in out.stderr + out.stdout
