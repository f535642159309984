"""Fleet mode against a real 3-member etcd cluster (Debian's etcd-server, three processes on free loopback ports) and
3 gateway replicas that know every member: with one member stopped (the leader among them) nothing changes for
callers or operators; with two stopped (no quorum) serving goes on under the last routes, changes are refused with
503 naming the store, and the fleet takes changes again once the members return."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from conftest import free_ports
from faults_support import copy_digits
from test_admin import admin
from test_fleet import ETCD, start_replicas, trailer, wait_connected

pytestmark = pytest.mark.skipif(
    not os.path.exists(ETCD), reason="etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)"
)


class EtcdCluster:
    """Three etcd members on free loopback ports; each stops and starts on its own, keeping its data."""

    def __init__(self, root, size=3):
        self.root = root
        self.names = [f"m{index}" for index in range(size)]
        ports = free_ports(2 * size)
        self.client = dict(zip(self.names, ports[:size]))
        self.peer = dict(zip(self.names, ports[size:]))
        self.processes = {}

    def endpoint(self, name):
        return f"http://127.0.0.1:{self.client[name]}"

    @property
    def endpoints(self):
        return [self.endpoint(name) for name in self.names]

    def start(self, name):
        peer = f"http://127.0.0.1:{self.peer[name]}"
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        self.processes[name] = subprocess.Popen(
            [ETCD, "--name", name, "--data-dir", str(self.root / f"etcd-{name}"),
             "--listen-client-urls", self.endpoint(name), "--advertise-client-urls", self.endpoint(name),
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "e2e-quorum"],
            stdout=open(self.root / f"etcd-{name}.log", "a"), stderr=subprocess.STDOUT,
        )

    def stop(self, name):
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)

    def healthy(self, name):
        try:
            with urllib.request.urlopen(self.endpoint(name) + "/health", timeout=1) as response:
                return b'"health":"true"' in response.read()
        except OSError:
            return False

    def wait_healthy(self, names, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.healthy(name) for name in names):
                return
            time.sleep(0.1)
        logs = "\n".join((self.root / f"etcd-{n}.log").read_text()[-1500:] for n in names)
        raise AssertionError(f"etcd members {names} not healthy within {timeout}s:\n{logs}")

    def leader(self):
        for name in self.processes:
            request = urllib.request.Request(self.endpoint(name) + "/v3/maintenance/status", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=2) as response:
                status = json.loads(response.read())
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return name
        raise AssertionError("no member says it leads")

    def stop_all(self):
        for name in list(self.processes):
            self.stop(name)


@pytest.fixture(scope="module")
def quorum(start_gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("quorum")
    repository = copy_digits(root)
    cluster = EtcdCluster(root)
    for name in cluster.names:
        cluster.start(name)
    cluster.wait_healthy(cluster.names)
    replicas = start_replicas(start_gateway, root, repository, cluster.endpoints, "/switchyard/quorum")
    yield cluster, replicas
    cluster.stop_all()


def change(gateway, weights):
    return admin(gateway, "PATCH", "/v1/routes/digits/weights", {"weights": weights, "reason": "quorum e2e"})


def wait_generation(gateways, generation, timeout=10):
    for gateway in gateways:
        deadline = time.time() + timeout
        while int(trailer(gateway)["generation"]) < generation:
            assert time.time() < deadline, f"{gateway.address} never reached generation {generation}"
            time.sleep(0.02)


def test_one_member_down_changes_nothing_two_down_refuses_changes_and_all_resume(quorum):
    cluster, (a, b, c) = quorum
    status, body = change(a, {"1": 40, "2": 60})
    assert status == 200, body
    wait_generation((a, b, c), body["generation"])

    # The leader goes: the other two elect a new one; calls and changes go on through any replica.
    gone = cluster.leader()
    cluster.stop(gone)
    status, body = change(b, {"1": 30, "2": 70})
    deadline = time.time() + 15
    while status != 200 and time.time() < deadline:  # a change may land during the election
        time.sleep(0.2)
        status, body = change(b, {"1": 30, "2": 70})
    assert status == 200, body
    wait_generation((a, b, c), body["generation"])
    for gateway in (a, b, c):
        wait_connected(gateway, 1)

    # A second member goes: no quorum. Serving continues under the last routes; changes are refused, naming why.
    second = next(name for name in cluster.processes)
    cluster.stop(second)
    held = body["generation"]
    for gateway in (a, b, c):
        wait_connected(gateway, 0, timeout=30)
    for gateway in (a, b, c):
        assert int(trailer(gateway)["generation"]) == held
    status, refused = change(c, {"1": 20, "2": 80})
    assert status == 503, refused
    assert "refused while the fleet's store is unreachable" in refused["error"], refused

    # Both return: the fleet is whole again and takes changes from any replica.
    cluster.start(gone)
    cluster.start(second)
    cluster.wait_healthy(cluster.names)
    for gateway in (a, b, c):
        wait_connected(gateway, 1, timeout=30)
    status, body = change(c, {"1": 20, "2": 80})
    assert status == 200, body
    wait_generation((a, b, c), body["generation"])
    for gateway in (a, b, c):
        status, seen = admin(gateway, "GET", "/v1/routes/digits")
        assert [v["weight"] for v in seen["route"]["versions"]] == [20, 80], seen
