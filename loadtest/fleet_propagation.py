"""Fleet mode: how long after the admin API acknowledges a weight change is it in force on every replica?

Starts etcd (one member, or with --etcd-members 3 a 3-member cluster) and R gateway replicas on loopback, keeps each
replica busy with back-to-back ModelInfer calls (one client thread per replica), then makes N weight changes, each
through a replica picked in turn. For each change: the time from the admin API's answer to the first call each
replica served under the change's generation (read from the `switchyard-route` trailer); the change's figure is the
slowest replica's. Prints p50/p99/max over the N changes, the command line and the host CPU.

With --failovers F (needs --etcd-members 3), F times during the changes the etcd member that leads the raft group is
killed (SIGKILL) while the changes go on; once another member leads, the killed member is started again. A change
that lands during the election is refused (503) or times out; it is retried until acknowledged, and the refusals are
counted. Every inference call is recorded with the instant it was sent and the generation it was served under; the
run reports the calls that failed and the calls served under a generation older than one acknowledged more than
100 ms before the call was sent (stale).

    python loadtest/fleet_propagation.py --changes 100 --replicas 3
    python loadtest/fleet_propagation.py --changes 100 --replicas 3 --etcd-members 3 --failovers 3
"""

import argparse
import bisect
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TOKEN = "fleet-bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_cpu():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def terminate(process, timeout):
    """Stops `process` if it still runs: SIGTERM, then SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_http(url, timeout=30, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout}s")


class Cluster:
    """etcd members on free loopback ports; a killed member starts again with its data."""

    def __init__(self, etcd, root, size):
        self.etcd, self.root = etcd, root
        self.names = [f"m{index}" for index in range(size)]
        self.client = {name: free_port() for name in self.names}
        self.peer = {name: free_port() for name in self.names}
        self.processes = {}

    def endpoint(self, name):
        return f"http://127.0.0.1:{self.client[name]}"

    def start(self, name):
        peer = f"http://127.0.0.1:{self.peer[name]}"
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        self.processes[name] = subprocess.Popen(
            [self.etcd, "--name", name, "--data-dir", str(self.root / f"etcd-{name}"),
             "--listen-client-urls", self.endpoint(name), "--advertise-client-urls", self.endpoint(name),
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "bench"],
            stdout=open(self.root / f"etcd-{name}.log", "a"), stderr=subprocess.STDOUT)

    def leader(self):
        for name, process in self.processes.items():
            if process.poll() is not None:
                continue
            try:
                request = urllib.request.Request(self.endpoint(name) + "/v3/maintenance/status", data=b"{}",
                                                 method="POST")
                with urllib.request.urlopen(request, timeout=1) as response:
                    status = json.loads(response.read())
            except OSError:
                continue
            if status.get("leader") and status.get("leader") == status.get("header", {}).get("member_id"):
                return name
        return None

    def fail_over(self):
        """Kills the leading member, waits for another to lead, starts the killed one again; returns the seconds
        without a leader."""
        for name in self.names:  # a member started again after the last failover has caught up
            wait_http(self.endpoint(name) + "/health")
        gone = self.leader()
        deadline = time.time() + 20
        while gone is None and time.time() < deadline:
            time.sleep(0.05)
            gone = self.leader()
        if gone is None:
            raise SystemExit("no etcd member leads")
        process = self.processes.pop(gone)
        process.kill()
        process.wait()
        killed = time.monotonic()
        while self.leader() is None:
            if time.time() > deadline + 20:
                raise SystemExit("no etcd member took the lead after the leader was killed")
            time.sleep(0.02)
        elected = time.monotonic() - killed
        self.start(gone)
        return gone, elected

    def stop(self):
        for process in self.processes.values():
            terminate(process, 20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument("--etcd-members", type=int, default=1, choices=(1, 3))
    parser.add_argument("--failovers", type=int, default=0)
    args = parser.parse_args()
    if args.failovers and args.etcd_members < 3:
        parser.error("--failovers needs --etcd-members 3 (a leader can only fail over to another member)")
    if not args.bin:
        out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        args.bin = os.path.join(out.stdout.strip(), "switchyard")

    root = pathlib.Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    processes = []
    cluster = Cluster(args.etcd, root, args.etcd_members)
    try:
        for name in cluster.names:
            cluster.start(name)
        for name in cluster.names:
            wait_http(cluster.endpoint(name) + "/health")
        endpoints = ", ".join(f'"{cluster.endpoint(name)}"' for name in cluster.names)
        replicas = []
        for index in range(args.replicas):
            port, admin_port = free_port(), free_port()
            config = root / f"replica-{index}.yaml"
            config.write_text(f"""
routes:
  - model: digits
    policy: canary
    versions: [{{version: 1, weight: 50}}, {{version: 2, weight: 50}}]
admin: {{token: {TOKEN}}}
cluster:
  replica_id: replica-{index}
  etcd: {{endpoints: [{endpoints}], prefix: /switchyard/bench}}
""")
            processes.append(subprocess.Popen(
                [args.bin, "serve", "--config", str(config), "--model-repository", str(MODELS),
                 "--listen", f"127.0.0.1:{port}", "--rest-listen", "", "--admin-listen", f"127.0.0.1:{admin_port}"],
                stdout=open(root / f"replica-{index}.log", "w"), stderr=subprocess.STDOUT))
            replicas.append((f"127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"))
        for _, admin_url in replicas:
            wait_http(admin_url + "/v1/routes", headers={"Authorization": f"Bearer {TOKEN}"})

        pixels = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:1], np.float32)
        request = service_pb2.ModelInferRequest(model_name="digits")
        request.inputs.add(name="pixels", datatype="FP32", shape=list(pixels.shape))
        request.raw_input_contents.append(pixels.tobytes())
        first_seen = [dict() for _ in replicas]  # per replica: generation → monotonic time of its first call
        calls = [0] * len(replicas)
        served = [[] for _ in replicas]  # per replica: (instant the call was sent, generation it was served under)
        failures = [[] for _ in replicas]  # per replica: the failed calls' errors
        stop = threading.Event()

        def drive(index, address):
            with grpc.insecure_channel(address) as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        _, rpc = stub.ModelInfer.with_call(request, timeout=10)
                    except grpc.RpcError as error:
                        failures[index].append(f"{error.code()}: {error.details()}")
                        continue
                    now = time.monotonic()
                    route = dict(rpc.trailing_metadata())["switchyard-route"]
                    generation = int(route.split(";")[0].split("=")[1])
                    first_seen[index].setdefault(generation, now)
                    served[index].append((sent, generation))
                    calls[index] += 1

        threads = [threading.Thread(target=drive, args=(i, a), daemon=True) for i, (a, _) in enumerate(replicas)]
        for thread in threads:
            thread.start()
        time.sleep(1)

        acknowledged = []
        refused = []  # changes refused or timed out during an election, each retried until acknowledged
        failovers = []
        failover_at = {args.changes * (k + 1) // (args.failovers + 1) for k in range(args.failovers)}
        failing = None  # the failover under way: it runs beside the changes, which go on through the election
        for change in range(args.changes):
            if change in failover_at:
                if failing:
                    failing.join()
                failing = threading.Thread(target=lambda: failovers.append(cluster.fail_over()), daemon=True)
                failing.start()
            _, admin_url = replicas[change % len(replicas)]
            weight = 10 + change % 80
            body = json.dumps({"weights": {"1": weight, "2": 100 - weight}}).encode()
            deadline = time.monotonic() + 60
            while True:
                http = urllib.request.Request(admin_url + "/v1/routes/digits/weights", data=body, method="PATCH",
                                              headers={"Authorization": f"Bearer {TOKEN}",
                                                       "Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(http, timeout=10) as response:
                        generation = json.loads(response.read())["generation"]
                    break
                except (urllib.error.HTTPError, OSError) as error:
                    detail = error.read().decode(errors="replace") if isinstance(error, urllib.error.HTTPError) else ""
                    refused.append(f"{error} {detail}".strip())
                    if time.monotonic() > deadline:
                        raise SystemExit(f"change {change} not acknowledged within 60 s: {refused[-1]}") from error
                    time.sleep(0.05)
            acknowledged.append((generation, time.monotonic()))
            time.sleep(0.05)
        if failing:
            failing.join()
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)

        delays = []
        for generation, at in acknowledged:
            per_replica = []
            for seen in first_seen:
                # The first call under this generation or any later one (a later change may overtake it).
                times = [t for g, t in seen.items() if g >= generation]
                per_replica.append((min(times) - at) * 1000 if times else float("inf"))
            delays.append(max(per_replica))
        delays.sort()

        # A call is stale when it was sent more than 100 ms after a newer generation than its own was acknowledged.
        ack_times = [at for _, at in acknowledged]
        ack_best = []  # the newest generation acknowledged up to each acknowledgment
        for generation, _ in acknowledged:
            ack_best.append(max(generation, ack_best[-1] if ack_best else 0))
        stale = []
        for index, records in enumerate(served):
            for sent, generation in records:
                known = bisect.bisect_right(ack_times, sent - 0.1)
                if known and ack_best[known - 1] > generation:
                    stale.append((index, generation, ack_best[known - 1]))

        def p(q):
            return delays[min(len(delays) - 1, int(round(q * (len(delays) - 1))))]
        print(f"command: {' '.join([sys.executable, *sys.argv])}")
        print(f"host cpu: {host_cpu()} ({os.cpu_count()} CPUs)")
        print(f"replicas: {len(replicas)}, changes: {len(delays)}, calls served: {sum(calls)}")
        print("acknowledgment → in force on every replica (ms; negative: in force before the answer arrived):")
        print(f"  p50 {p(0.5):.1f}  p99 {p(0.99):.1f}  max {delays[-1]:.1f}")
        print(f"etcd members: {args.etcd_members}; leader failovers: {len(failovers)}"
              + "".join(f"; killed {name}, new leader after {elected * 1000:.0f} ms" for name, elected in failovers))
        print(f"changes refused or timed out during elections (retried until acknowledged): {len(refused)}")
        for reason in sorted(set(r[:160] for r in refused))[:5]:
            print(f"  {reason}")
        failed = sum(len(f) for f in failures)
        print(f"failed calls: {failed}")
        for reason in sorted(set(r for f in failures for r in f))[:5]:
            print(f"  {reason}")
        print(f"calls served under a generation older than one acknowledged > 100 ms before they were sent: "
              f"{len(stale)}")
        for index, generation, newer in stale[:5]:
            print(f"  replica-{index}: generation {generation}, {newer} acknowledged")
    finally:
        for process in reversed(processes):
            terminate(process, 30)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
