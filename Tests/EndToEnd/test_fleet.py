"""Fleet mode end to end: one real etcd (Debian's etcd-server, started here on free loopback ports with a
temporary data directory) and three gateway replicas sharing its prefix. A weight change through replica A is in
force on B and C at the change's revision (their next call's `switchyard-route` trailer shows it); of two concurrent
changes from the same read, one wins and the other gets 409 with the newer state; with etcd stopped the replicas
keep serving the last routes, report `switchyard_cluster_connected 0`, refuse changes with 503 and the reason, and
take changes again once etcd is back."""

import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import grpc
import pytest
from conftest import binary, free_port
from faults_support import copy_digits
from prometheus_client.parser import text_string_to_metric_families
from test_admin import TOKEN, admin, canary_config, infer, wait_admin
from tritonclient.grpc import service_pb2_grpc

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
pytestmark = pytest.mark.skipif(
    not os.path.exists(ETCD), reason="etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)"
)


class Etcd:
    """One etcd member on free loopback ports; stop() and start() keep its data."""

    def __init__(self, root):
        self.client_port, self.peer_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.data = root / "etcd-data"
        self.log = root / "etcd.log"
        self.process = None
        self.started = False  # once it has run, a restart keeps its ports (its data names them)

    def start(self, attempts=3):
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [ETCD, "--name", "e2e", "--data-dir", str(self.data),
             "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"e2e={peer}"],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None and attempts > 1 and not self.started:
                # A free port found earlier was taken before etcd bound it: start again on new ports, afresh.
                shutil.rmtree(self.data, ignore_errors=True)
                self.client_port, self.peer_port = free_port(), free_port()
                self.endpoint = f"http://127.0.0.1:{self.client_port}"
                return self.start(attempts - 1)
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as response:
                    if b"true" in response.read():
                        self.started = True
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"etcd did not become healthy:\n{self.log.read_text()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def fleet(start_gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    with fresh_fleet(start_gateway, root, copy_digits(root), "/switchyard/e2e") as (etcd, replicas):
        yield etcd, replicas


@contextlib.contextmanager
def fresh_fleet(start_gateway, root, repository, prefix, **config):
    """One etcd and three replicas (configured as replica_config says, with `config`), stopped (the replicas first)
    when it ends."""
    etcd = Etcd(root)
    etcd.start()
    replicas = []
    try:
        replicas = start_replicas(start_gateway, root, repository, [etcd.endpoint], prefix, **config)
        yield etcd, replicas
    finally:
        for gateway in replicas:
            if gateway.process.poll() is None:
                gateway.stop()
        etcd.stop()


def replica_config(name, endpoints, prefix, weights=(50, 50), admin_keys=""):
    """The configuration of replica-`name`: test_admin's canary route at `weights` and its token, `admin_keys` (lines
    indented two spaces), and a cluster on the etcd `endpoints` under `prefix`."""
    listed = ", ".join(f'"{endpoint}"' for endpoint in endpoints)
    return canary_config(weights) + admin_keys + f"""cluster:
  replica_id: replica-{name}
  etcd:
    endpoints: [{listed}]
    prefix: {prefix}
    dial_timeout_ms: 500
    lease_ttl_s: 3
"""


def start_replicas(start_gateway, root, repository, endpoints, prefix, names=("a", "b", "c"), **config):
    """Gateways of one fleet (replica-a, -b, …) on the digits model, its routes seeded 50/50 unless `config` says
    other weights (replica_config, written to root/<name>.yaml), each connected."""
    replicas = []
    for name in names:
        path = root / f"{name}.yaml"
        path.write_text(replica_config(name, endpoints, prefix, **config))
        gateway = start_gateway("--config", str(path), repository=repository)
        wait_admin(gateway)
        replicas.append(gateway)
    for gateway in replicas:
        wait_connected(gateway, 1)
    return replicas


def connected(gateway):
    request = urllib.request.Request(gateway.admin_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "switchyard_cluster_connected":
            return family.samples[0].value
    raise AssertionError("no switchyard_cluster_connected in /metrics")


def wait_connected(gateway, value, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if connected(gateway) == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"switchyard_cluster_connected never became {value}:\n{gateway.output()}")


def trailer(gateway):
    with grpc.insecure_channel(gateway.address) as channel:
        return infer(service_pb2_grpc.GRPCInferenceServiceStub(channel))


def test_replicas_share_the_seeded_routes_at_one_generation(fleet):
    _, replicas = fleet
    answers = [admin(gateway, "GET", "/v1/routes/digits") for gateway in replicas]
    assert all(status == 200 for status, _ in answers), answers
    assert len({body["generation"] for _, body in answers}) == 1
    assert all([v["weight"] for v in body["route"]["versions"]] == [50, 50] for _, body in answers)


def test_a_weight_change_through_one_replica_is_in_force_on_every_replica(fleet):
    _, (a, b, c) = fleet
    status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 0, "2": 100}, "reason": "e2e"})
    assert status == 200, body
    generation = body["generation"]
    for gateway in (a, b, c):
        deadline = time.time() + 5
        while True:
            route = trailer(gateway)
            if int(route["generation"]) >= generation:
                break
            assert time.time() < deadline, f"{gateway.address} still at generation {route['generation']}"
            time.sleep(0.01)
        assert int(route["generation"]) == generation
        # Weight 0 on version 1: every call now goes to version 2 on every replica.
        assert all(trailer(gateway)["version"] == "2" for _ in range(10))
        status, seen = admin(gateway, "GET", "/v1/routes/digits")
        assert seen["generation"] == generation
        assert [v["weight"] for v in seen["route"]["versions"]] == [0, 100]


def test_of_two_concurrent_changes_one_wins_and_the_other_gets_409(fleet):
    _, (a, b, _) = fleet
    # Both replicas read the same generation; both changes race.
    start = admin(a, "GET", "/v1/routes/digits")[1]["generation"]
    assert admin(b, "GET", "/v1/routes/digits")[1]["generation"] == start
    outcomes = []
    for attempt in range(20):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            x = pool.submit(admin, a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 10 + attempt}})
            y = pool.submit(admin, b, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 60 + attempt}})
            outcomes = [x.result(), y.result()]
        if sorted(status for status, _ in outcomes) == [200, 409]:
            break
    statuses = sorted(status for status, _ in outcomes)
    # Each change is guarded by the generation its replica read: never two silent 200s over one read.
    assert statuses in ([200, 409], [200, 200]), outcomes
    assert [200, 409] == statuses, f"no race observed in 20 attempts: {outcomes}"
    loser = next(body for status, body in outcomes if status == 409)
    winner = next(body for status, body in outcomes if status == 200)
    assert f"now generation {winner['generation']}" in loser["error"], loser


def test_etcd_away_keeps_serving_refuses_changes_and_resumes(fleet):
    etcd, (a, b, c) = fleet
    before = admin(b, "GET", "/v1/routes/digits")[1]
    etcd.stop()
    try:
        for gateway in (a, b, c):
            wait_connected(gateway, 0)
        for gateway in (a, b, c):
            assert int(trailer(gateway)["generation"]) == before["generation"]
        status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 1}})
        assert status == 503, body
        assert "route changes are refused while the fleet's store is unreachable" in body["error"]
        assert admin(b, "GET", "/v1/routes/digits")[1] == before
    finally:
        etcd.start()
    for gateway in (a, b, c):
        wait_connected(gateway, 1)
    status, body = admin(c, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 100, "2": 0}})
    assert status == 200, body
    for gateway in (a, b):
        deadline = time.time() + 5
        while int(trailer(gateway)["generation"]) < body["generation"]:
            assert time.time() < deadline
            time.sleep(0.01)


def test_a_change_based_on_a_read_another_replica_overtook_gets_409(fleet):
    _, (a, b, _) = fleet
    read = admin(a, "GET", "/v1/routes/digits")[1]["generation"]
    status, body = admin(b, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 25, "2": 75}})
    assert status == 200, body
    changed = body["generation"]
    # Replica a has applied b's change (the watch), yet the operator's change was based on the older read.
    deadline = time.time() + 5
    while admin(a, "GET", "/v1/routes/digits")[1]["generation"] < changed:
        assert time.time() < deadline, "replica a never saw the change"
        time.sleep(0.01)
    status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 90}},
                         headers={"If-Match": f'"{read}"'})
    assert status == 409, body
    assert f"changed at generation {changed}, after generation {read}" in body["error"], body
    status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 90}},
                         headers={"If-Match": f'"{changed}"'})
    assert status == 200, body


def test_models_list_and_shadow_report_show_the_fleet_per_replica_and_summed(fleet):
    _, (a, b, c) = fleet
    status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 100, "2": 0}})
    assert status == 200, body
    status, body = admin(a, "PUT", "/v1/routes/digits/shadow", {"version": "2", "fraction": 1})
    assert status == 200, body
    generation = body["generation"]
    for gateway, calls in ((a, 5), (b, 3), (c, 2)):
        while int(trailer(gateway)["generation"]) < generation:
            time.sleep(0.01)
        for _ in range(calls):
            trailer(gateway)

    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN)

    def cli(*args):
        out = subprocess.run([binary(), *args, "--admin", c.admin_url], env=env, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def published():
        return admin(b, "GET", "/v1/fleet")[1]

    # Every replica publishes its aggregates every 250 ms (shadow pairs complete on idle capacity, later on a busy
    # host): compare the CLI with the published view once the view held still around both commands.
    deadline = time.time() + 20
    while True:
        first = published()
        pairs = [p for p in first.get("shadow") or [] if (p["primary_version"], p["shadow_version"]) == ("1", "2")]
        shown, listed = cli("shadow", "report", "--fleet"), cli("models", "list", "--fleet")
        time.sleep(0.6)
        if pairs and len(pairs[0]["replicas"]) == 3 and published() == first:
            break
        assert time.time() < deadline, first
    pair = pairs[0]

    assert "fleet: 3 replicas (replica-a, replica-b, replica-c)" in shown, shown
    line = next(line for line in shown.splitlines() if line.startswith("digits 1→2"))
    assert f"fleet pairs={pair['compared']} agreed={pair['agreed']}" in line, (line, pair)
    for part in pair["replicas"]:
        assert f"{part['replica']} {part['agreed']}/{part['compared']}" in line, (line, pair)
    assert pair["compared"] == sum(part["compared"] for part in pair["replicas"]) > 0

    version = next(v for v in first["versions"] if (v["model"], v["version"]) == ("digits", "1"))
    line = next(line for line in listed.splitlines() if line.startswith("  version 1 "))
    assert "loaded on 3/3" in line, listed
    assert f"fleet succeeded={version['calls'] - version['failures']} failed={version['failures']}" in line, line
    for part in version["replicas"]:
        assert f"{part['replica']} {part['calls'] - part['failures']}/{part['failures']}" in line, (line, version)
    assert version["calls"] == sum(part["calls"] for part in version["replicas"])
    # Without --fleet: the one replica reached, as before.
    assert "fleet:" not in cli("models", "list")


def test_the_fleet_view_lists_every_replica_and_drops_one_that_stops(fleet):
    # Runs last: it stops replica c.
    _, (a, b, c) = fleet
    status, body = admin(a, "PATCH", "/v1/routes/digits/weights", {"weights": {"1": 40, "2": 60}})
    assert status == 200, body
    changed = body["generation"]

    def view(gateway):
        status, body = admin(gateway, "GET", "/v1/fleet")
        assert status == 200, body
        return body

    deadline = time.time() + 10
    while True:
        seen = view(b)
        if seen["converged"] and seen["generation"] == changed and len(seen["replicas"]) == 3:
            break
        assert time.time() < deadline, f"the fleet never converged on generation {changed}: {seen}"
        time.sleep(0.1)
    assert seen["replica"] == "replica-b"
    assert [r["replica"] for r in seen["replicas"]] == ["replica-a", "replica-b", "replica-c"]
    for replica in seen["replicas"]:
        assert replica["ready"] and replica["models"] == {"digits": ["1", "2"]}, replica
        assert replica["route_generation"] == changed and replica["build"], replica
    assert {r["address"] for r in seen["replicas"]} == {g.address for g in (a, b, c)}

    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN)
    out = subprocess.run([binary(), "fleet", "status", "--admin", a.admin_url], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"3 replicas, generation {changed}: converged" in out.stdout, out.stdout
    assert "replica-c" in out.stdout and "digits@1,2" in out.stdout, out.stdout

    # A replica that stops revokes its lease: it leaves the view at once, not after the lease's TTL.
    c.stop()
    stopped = time.time()
    while [r["replica"] for r in view(a)["replicas"]] != ["replica-a", "replica-b"]:
        assert time.time() - stopped < 2, view(a)
        time.sleep(0.05)
