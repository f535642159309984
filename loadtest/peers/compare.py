#!/usr/bin/env python3
"""Switchyard side by side with the servers users would pick instead, on the same ONNX models, driven by the same
client at the same load. Not part of the default test run.

  loadtest/peers/compare.py [--models digits,mlp] [--servers switchyard,mlserver,grpcio] [--duration 15]
                            [--concurrency 64] [--rounds 3] [--perf-analyzer] [--out loadtest/results/peers-TIME]

For each model (the digits demo model, version 2: 64→256→128→10; and a 784→1024→1024→10 MLP made with
onnx.helper) and each server:
  1. saturation: switchyard-load closed loop at --concurrency for --duration s → the highest sustained rate;
  2. equal load: switchyard-load open loop (Poisson) at half the slowest server's saturation rate → p50/p99 that
     compare like for like;
  3. with --perf-analyzer, perf_analyzer at the same concurrency (servers with ModelConfig only: MLServer has none).
Server CPU per request is the whole process tree's user+system time (MLServer runs inference in worker processes).
With --rounds N both phases run N times, the servers taking turns within each round so that every ratio compares
runs made minutes apart at most; the figures are medians over the rounds, and the per-round throughput ratios are
printed too. Prints the ratios Switchyard / peer and writes every result file, a summary.json, and compare-MODEL.html reports.

Peers: MLServer (pip mlserver, the onnxruntime runtime in onnx_runtime.py, adaptive batching on: max_batch_size 64,
max_batch_time 2 ms) and a plain grpcio + onnxruntime server (grpcio_server.py, 8 threads, no batching). They run in
their own virtual environment (install-peers.sh makes it on first use).
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS_VENV = pathlib.Path(os.environ.get("SWITCHYARD_PEERS_VENV", pathlib.Path.home() / ".cache/switchyard/peers-venv"))
TEST_VENV = pathlib.Path(os.environ.get("SWITCHYARD_TEST_VENV", pathlib.Path.home() / ".cache/switchyard/test-venv"))
SCRATCH = os.environ.get("SWITCHYARD_SCRATCH", ".build")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(pid):
    """user+system CPU of pid and all its descendants (live ones), in seconds."""
    children = {}
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


def wait_ready(port, model, timeout=120):
    import tritonclient.grpc as grpcclient

    deadline = time.time() + timeout
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    while time.time() < deadline:
        try:
            if client.is_model_ready(model):
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise SystemExit(f"compare: model '{model}' was not ready on port {port} within {timeout} s")


class Server:
    def __init__(self, kind, model, work):
        self.kind, self.model, self.work = kind, model, work
        self.port = free_port()
        self.proc = None
        self.log = open(work / f"{kind}-{model['name']}.log", "w")

    def start(self, bin_dir):
        m = self.model
        if self.kind == "switchyard":
            cmd = [str(bin_dir / "switchyard"), "serve", "--model-repository", str(m["repo"]),
                   "--listen", f"127.0.0.1:{self.port}", "--rest-listen", "", "--threads", "1", "--log-level", "warning"]
            env = None
        elif self.kind == "grpcio":
            cmd = [str(PEERS_VENV / "bin/python"), str(HERE / "grpcio_server.py"), "--model", m["name"],
                   "--onnx", str(m["onnx"]), "--port", str(self.port), "--workers", "8"]
            env = None
        elif self.kind == "mlserver":
            repo = self.work / f"mlserver-{m['name']}"
            shutil.rmtree(repo, ignore_errors=True)
            model_dir = repo / m["name"]
            model_dir.mkdir(parents=True)
            shutil.copy(m["onnx"], model_dir / "model.onnx")
            shutil.copy(HERE / "onnx_runtime.py", model_dir / "onnx_runtime.py")
            (model_dir / "model-settings.json").write_text(json.dumps({
                "name": m["name"],
                "implementation": "onnx_runtime.OnnxRuntimeModel",
                "max_batch_size": 64,
                "max_batch_time": 0.002,
                "parameters": {"uri": "./model.onnx", "version": "1"},
            }, indent=2))
            (repo / "settings.json").write_text(json.dumps({
                "grpc_port": self.port, "http_port": free_port(), "metrics_port": free_port(),
                "host": "127.0.0.1", "debug": False,
            }, indent=2))
            cmd = [str(PEERS_VENV / "bin/mlserver"), "start", str(repo)]
            env = dict(os.environ, PYTHONPATH=str(model_dir))
        else:
            raise SystemExit(f"compare: unknown server '{self.kind}'; expected switchyard, mlserver or grpcio")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_ready(self.port, m["name"])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_load(bin_dir, server, args, out, label):
    cpu0 = tree_cpu_seconds(server.proc.pid)
    cmd = [str(bin_dir / "switchyard-load"), "--target", f"127.0.0.1:{server.port}", "--model", server.model["name"],
           "--label", label, "--output", str(out), "--quiet", "--connections", "4", "--streams", "128",
           "--input", server.model["input"]] + args
    done = subprocess.run(cmd, capture_output=True, text=True)
    cpu1 = tree_cpu_seconds(server.proc.pid)
    if done.returncode != 0:
        raise SystemExit(f"compare: switchyard-load failed against {label}:\n{done.stderr}{done.stdout}")
    result = json.loads(out.read_text())
    # Replace the single-process figure with the process tree's (includes MLServer's inference workers; the
    # warm-up is included in both runs' totals alike, so the figure slightly overstates, never understates).
    total = result["summary"]["completed"]
    result["serverCPU"] = {"pid": server.proc.pid, "cpuSeconds": cpu1 - cpu0,
                           "cpuPerRequestUs": (cpu1 - cpu0) * 1e6 / max(total, 1)}
    out.write_text(json.dumps(result, indent=1))
    return result


def run_perf_analyzer(server, concurrency, duration, work):
    pa = TEST_VENV / "bin/perf_analyzer"
    if not pa.exists():
        return {"error": f"{pa} not found (scripts/install-triton-clients.sh installs it)"}
    csv = work / f"pa-{server.kind}-{server.model['name']}.csv"
    cmd = [str(pa), "-m", server.model["name"], "-i", "grpc", "-u", f"127.0.0.1:{server.port}",
           "--concurrency-range", f"{concurrency}:{concurrency}", "--measurement-interval", str(int(duration * 1000)),
           "-f", str(csv), "--percentile", "99", "--stability-percentage", "50", "--max-trials", "6"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 10 + 120)
    if done.returncode != 0 or not csv.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"perf_analyzer exit {done.returncode}: {' | '.join(tail)}"}
    lines = csv.read_text().splitlines()
    head, row = lines[0].split(","), lines[1].split(",")
    values = dict(zip(head, row))
    return {"throughput": float(values["Inferences/Second"]), "p50Ms": float(values["p50 latency"]) / 1000,
            "p99Ms": float(values["p99 latency"]) / 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits,mlp")
    parser.add_argument("--servers", default="switchyard,mlserver,grpcio")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="repeat both phases; report medians")
    parser.add_argument("--perf-analyzer", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()

    subprocess.run(["bash", str(HERE / "install-peers.sh"), str(PEERS_VENV)], check=True)
    if pathlib.Path(sys.prefix).resolve() != PEERS_VENV.resolve():
        os.execv(str(PEERS_VENV / "bin/python"), [str(PEERS_VENV / "bin/python"), __file__] + sys.argv[1:])
    os.chdir(ROOT)
    for product in ("switchyard", "switchyard-load"):
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH, "--product", product],
                       check=True, stdout=subprocess.DEVNULL)
    bin_dir = pathlib.Path(subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH,
                                           "--show-bin-path"], check=True, capture_output=True, text=True).stdout.strip())
    out = pathlib.Path(args.out or ROOT / "loadtest/results" / time.strftime("peers-%Y%m%dT%H%M%SZ", time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)

    models = {}
    if "digits" in args.models:
        repo = out / "repo-digits" / "digits"
        shutil.rmtree(repo.parent, ignore_errors=True)
        (repo / "1").mkdir(parents=True)
        shutil.copy(ROOT / "models/digits/2/model.onnx", repo / "1/model.onnx")
        shutil.copy(ROOT / "models/digits/config.yaml", repo / "config.yaml")
        models["digits"] = {"name": "digits", "repo": repo.parent, "onnx": repo / "1/model.onnx",
                            "input": str(ROOT / "models/digits/samples.json")}
    if "mlp" in args.models:
        repo = out / "repo-mlp" / "mlp"
        shutil.rmtree(repo.parent, ignore_errors=True)
        (repo / "1").mkdir(parents=True)
        subprocess.run([sys.executable, str(HERE / "make_mlp.py"), str(repo / "1/model.onnx")], check=True)
        (repo / "config.yaml").write_text("max_batch_size: 64\nworkers: 1\nslo_ms: 50\nmax_queue_size: 4096\n")
        models["mlp"] = {"name": "mlp", "repo": repo.parent, "onnx": repo / "1/model.onnx", "input": "random"}

    servers = args.servers.split(",")
    summary = {}

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    for name, model in models.items():
        rows = {kind: {} for kind in servers}
        rounds = {kind: [] for kind in servers}
        for round_index in range(args.rounds):
            for kind in servers:
                server = Server(kind, model, out)
                try:
                    server.start(bin_dir)
                    r = run_load(bin_dir, server, ["--concurrency", str(args.concurrency), "--duration",
                                                   str(args.duration), "--warmup", "2"],
                                 out / f"{name}-{kind}-saturation-{round_index + 1}.json", f"{kind} c={args.concurrency}")
                    rounds[kind].append({"saturation": r["summary"]["okThroughput"],
                                         "saturationP99Ms": r["summary"]["latencyMs"]["p99"],
                                         "cpuPerRequestUs": r["serverCPU"]["cpuPerRequestUs"],
                                         "errors": r["summary"]["errors"]})
                    if args.perf_analyzer and round_index == 0:
                        rows[kind]["perfAnalyzer"] = run_perf_analyzer(server, args.concurrency, args.duration, out)
                    last = rounds[kind][-1]
                    print(f"{name:7s} {kind:10s} round {round_index + 1}: saturation {last['saturation']:10.0f} req/s  "
                          f"p99 {last['saturationP99Ms']:8.2f} ms  server CPU {last['cpuPerRequestUs']:8.1f} µs/req",
                          flush=True)
                finally:
                    server.stop()
        for kind in servers:
            for key in ("saturation", "saturationP99Ms", "cpuPerRequestUs", "errors"):
                rows[kind][key] = median([r[key] for r in rounds[kind]])
            rows[kind]["saturationRounds"] = [r["saturation"] for r in rounds[kind]]
        rate = 0.5 * min(row["saturation"] for row in rows.values())
        equal = {kind: [] for kind in servers}
        for round_index in range(args.rounds):
            for kind in servers:
                server = Server(kind, model, out)
                try:
                    server.start(bin_dir)
                    r = run_load(bin_dir, server, ["--rate", f"{rate:.0f}", "--arrival", "poisson", "--duration",
                                                   str(args.duration), "--warmup", "2"],
                                 out / f"{name}-{kind}-equal-load-{round_index + 1}.json", f"{kind} @{rate:.0f}/s")
                    equal[kind].append({"p50Ms": r["summary"]["latencyMs"]["p50"],
                                        "p99Ms": r["summary"]["latencyMs"]["p99"],
                                        "equalLoadOk": r["summary"]["ok"], "equalLoadErrors": r["summary"]["errors"],
                                        "equalLoadCpuPerRequestUs": r["serverCPU"]["cpuPerRequestUs"]})
                    last = equal[kind][-1]
                    print(f"{name:7s} {kind:10s} round {round_index + 1} at {rate:8.0f} req/s: p50 {last['p50Ms']:8.3f} ms  "
                          f"p99 {last['p99Ms']:8.3f} ms  errors {last['equalLoadErrors']}", flush=True)
                finally:
                    server.stop()
        for kind in servers:
            rows[kind]["equalLoadRate"] = rate
            for key in ("p50Ms", "p99Ms", "equalLoadOk", "equalLoadErrors", "equalLoadCpuPerRequestUs"):
                rows[kind][key] = median([r[key] for r in equal[kind]])
        summary[name] = rows
        subprocess.run([sys.executable, str(ROOT / "loadtest/report.py"), "-o", str(out / f"compare-{name}.html")]
                       + [str(out / f"{name}-{k}-{phase}-1.json") for phase in ("saturation", "equal-load") for k in servers],
                       check=True, stdout=subprocess.DEVNULL)

    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print()
    print("Switchyard / peer ratios (throughput: saturation req/s ratio; p50/p99: at equal load, peer ÷ Switchyard,")
    print("so > 1 means Switchyard is faster; CPU: server CPU µs per request at saturation, peer ÷ Switchyard)")
    for name, rows in summary.items():
        s = rows.get("switchyard")
        for kind, row in rows.items():
            if kind == "switchyard" or not s:
                continue
            per_round = ", ".join(f"{a / max(b, 1e-9):.1f}×" for a, b in zip(s["saturationRounds"], row["saturationRounds"]))
            print(f"  {name:7s} vs {kind:9s} throughput {s['saturation'] / max(row['saturation'], 1e-9):6.1f}× (rounds: {per_round})   "
                  f"p50 {row['p50Ms'] / max(s['p50Ms'], 1e-9):6.1f}×   p99 {row['p99Ms'] / max(s['p99Ms'], 1e-9):6.1f}×   "
                  f"CPU/req {row['cpuPerRequestUs'] / max(s['cpuPerRequestUs'], 1e-9):6.1f}×")
            if "perfAnalyzer" in row and "perfAnalyzer" in s:
                a, b = s["perfAnalyzer"], row["perfAnalyzer"]
                if "error" in a or "error" in b:
                    print(f"      perf_analyzer: switchyard {a.get('error', 'ok')}; {kind} {b.get('error', 'ok')}")
                else:
                    print(f"      perf_analyzer c={args.concurrency}: throughput {a['throughput'] / max(b['throughput'], 1e-9):6.1f}×  "
                          f"(switchyard {a['throughput']:.0f}/s p99 {a['p99Ms']:.2f} ms; {kind} {b['throughput']:.0f}/s "
                          f"p99 {b['p99Ms']:.2f} ms)")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
