"""Fleet mode: how long after the admin API acknowledges a weight change is it in force on every replica?

Starts one etcd and R gateway replicas on loopback, keeps each replica busy with back-to-back ModelInfer calls
(one client thread per replica), then makes N weight changes, each through a replica picked in turn. For each
change: the time from the admin API's answer to the first call each replica served under the change's generation
(read from the `switchyard-route` trailer); the change's figure is the slowest replica's. Prints p50/p99/max over
the N changes, the command line and the host CPU.

    python loadtest/fleet_propagation.py --changes 100 --replicas 3
"""

import argparse
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


def wait_http(url, timeout=30, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    args = parser.parse_args()
    if not args.bin:
        out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        args.bin = os.path.join(out.stdout.strip(), "switchyard")

    root = pathlib.Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    processes = []
    try:
        client, peer = free_port(), free_port()
        endpoint = f"http://127.0.0.1:{client}"
        processes.append(subprocess.Popen(
            [args.etcd, "--name", "bench", "--data-dir", str(root / "etcd"),
             "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
             f"http://127.0.0.1:{peer}", "--initial-cluster", f"bench=http://127.0.0.1:{peer}"],
            stdout=open(root / "etcd.log", "w"), stderr=subprocess.STDOUT))
        wait_http(endpoint + "/health")
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
  etcd: {{endpoints: ["{endpoint}"], prefix: /switchyard/bench}}
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
        stop = threading.Event()

        def drive(index, address):
            with grpc.insecure_channel(address) as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                while not stop.is_set():
                    _, rpc = stub.ModelInfer.with_call(request, timeout=10)
                    now = time.monotonic()
                    route = dict(rpc.trailing_metadata())["switchyard-route"]
                    generation = int(route.split(";")[0].split("=")[1])
                    first_seen[index].setdefault(generation, now)
                    calls[index] += 1

        threads = [threading.Thread(target=drive, args=(i, a), daemon=True) for i, (a, _) in enumerate(replicas)]
        for thread in threads:
            thread.start()
        time.sleep(1)

        acknowledged = []
        for change in range(args.changes):
            _, admin_url = replicas[change % len(replicas)]
            weight = 10 + change % 80
            body = json.dumps({"weights": {"1": weight, "2": 100 - weight}}).encode()
            http = urllib.request.Request(admin_url + "/v1/routes/digits/weights", data=body, method="PATCH",
                                          headers={"Authorization": f"Bearer {TOKEN}",
                                                   "Content-Type": "application/json"})
            with urllib.request.urlopen(http, timeout=10) as response:
                generation = json.loads(response.read())["generation"]
            acknowledged.append((generation, time.monotonic()))
            time.sleep(0.05)
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
        def p(q):
            return delays[min(len(delays) - 1, int(round(q * (len(delays) - 1))))]
        print(f"command: {' '.join([sys.executable, *sys.argv])}")
        print(f"host cpu: {host_cpu()} ({os.cpu_count()} CPUs)")
        print(f"replicas: {len(replicas)}, changes: {len(delays)}, calls served: {sum(calls)}")
        print("acknowledgment → in force on every replica (ms; negative: in force before the answer arrived):")
        print(f"  p50 {p(0.5):.1f}  p99 {p(0.99):.1f}  max {delays[-1]:.1f}")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
