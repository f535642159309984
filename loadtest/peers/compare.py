#!/usr/bin/env python3
"""Switchyard side by side with the servers users would pick instead, on the same ONNX models, driven by the same
client at the same load. Not part of the default test run.

  loadtest/peers/compare.py [--models digits,mlp] [--servers switchyard,mlserver,grpcio] [--duration 15]
                            [--concurrency 64] [--rounds 3] [--perf-analyzer] [--protocol grpc|rest]
                            [--bin-dir DIR] [--out loadtest/results/peers-TIME]

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

With --protocol rest (servers switchyard,mlserver: grpcio_server.py speaks gRPC only) the same servers are driven
over v2 REST, POST /v2/models/{m}/infer, by h2load --h1 (nghttp2's client, one thread, --concurrency connections,
one request in flight on each) with a batch-1 JSON body: the first row of models/digits/samples.json for digits, a
fixed-seed random row for the MLP. Before measuring, each server must answer that body with 200 and the outputs
onnxruntime computes for it. Per round and server: a 2 s h2load warm-up, then --duration s measured → 2xx
requests/s, p50/p99 from h2load's per-request log, server CPU per request (process tree, measured run only).
Switchyard also runs with the binary tensor data extension (Inference-Header-Content-Length, binary_data_size on
the input, raw FP32 after the JSON header, binary_data_output); MLServer is sent the same request once and its
answer is recorded (it does not implement the extension), but it is not measured that way. No equal-load phase
over REST: h2load's --rate paces connections, not requests.

--bin-dir DIR takes switchyard (and switchyard-load) from DIR instead of building them (e.g. a release build made
with --scratch-path elsewhere); otherwise they are built with `swift build -c release --scratch-path
$SWITCHYARD_SCRATCH` (default .build).

Peers: MLServer (pip mlserver, the onnxruntime runtime in onnx_runtime.py, adaptive batching on: max_batch_size 64,
max_batch_time 2 ms) and a plain grpcio + onnxruntime server (grpcio_server.py, 8 threads, no batching). They run in
their own virtual environment (install-peers.sh makes it on first use).
"""

import argparse
import json
import os
import pathlib
import re
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


def rest_ready(port, model, timeout=60):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=5) as answer:
                if answer.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.25)
    raise SystemExit(f"compare: model '{model}' was not ready over REST on port {port} within {timeout} s")


class Server:
    def __init__(self, kind, model, work, rest=False):
        self.kind, self.model, self.work = kind, model, work
        self.port = free_port()
        self.rest_port = free_port() if rest else None
        self.proc = None
        self.log = open(work / f"{kind}-{model['name']}.log", "w")

    def start(self, bin_dir):
        m = self.model
        if self.kind == "switchyard":
            cmd = [str(bin_dir / "switchyard"), "serve", "--model-repository", str(m["repo"]),
                   "--listen", f"127.0.0.1:{self.port}",
                   "--rest-listen", f"127.0.0.1:{self.rest_port}" if self.rest_port else "",
                   "--threads", "1", "--log-level", "warning"]
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
                "grpc_port": self.port, "http_port": self.rest_port or free_port(), "metrics_port": free_port(),
                "host": "127.0.0.1", "debug": False,
            }, indent=2))
            cmd = [str(PEERS_VENV / "bin/mlserver"), "start", str(repo)]
            env = dict(os.environ, PYTHONPATH=str(model_dir))
        else:
            raise SystemExit(f"compare: unknown server '{self.kind}'; expected switchyard, mlserver or grpcio")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_ready(self.port, m["name"])
        if self.rest_port:
            rest_ready(self.rest_port, m["name"])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def fresh_servers(rounds, servers, model, work, bin_dir, rest=False):
    """(round index, kind, server) for each of `rounds` rounds and each kind in `servers` in turn: a fresh server of
    that kind for `model`, started, and stopped when the loop moves on or is left."""
    for round_index in range(rounds):
        for kind in servers:
            server = Server(kind, model, work, rest=rest)
            try:
                server.start(bin_dir)
                yield round_index, kind, server
            finally:
                server.stop()


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


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


def rest_requests(model, work):
    """Batch-1 REST requests for the model — JSON tensors, and the binary tensor data extension — written to files
    for h2load, with the outputs onnxruntime computes for the same input."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model["onnx"]), providers=["CPUExecutionProvider"])
    (tensor,) = session.get_inputs()
    width = tensor.shape[1]
    if model["input"] == "random":
        x = np.random.default_rng(64).random((1, width), dtype=np.float32)
    else:
        x = np.asarray(json.loads(pathlib.Path(model["input"]).read_text())[tensor.name][0], dtype=np.float32)
        x = x.reshape(1, width)
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {tensor.name: x})))
    spec = {"name": tensor.name, "shape": [1, width], "datatype": "FP32"}
    body = json.dumps({"inputs": [dict(spec, data=x.ravel().tolist())]}).encode()
    header = json.dumps({"inputs": [dict(spec, parameters={"binary_data_size": x.nbytes})],
                         "parameters": {"binary_data_output": True}}).encode()
    requests = {
        "json": {"body": body, "headers": {"content-type": "application/json"}},
        "binary": {"body": header + x.tobytes(), "headers": {"content-type": "application/octet-stream",
                                                             "inference-header-content-length": str(len(header))}},
    }
    for encoding, request in requests.items():
        request["file"] = work / f"rest-{model['name']}-{encoding}.body"
        request["file"].write_bytes(request["body"])
    return requests, expected


def rest_check(port, model, request, expected):
    """Sends the request once; None when the answer is 200 with the expected outputs, else what was wrong."""
    import urllib.error
    import urllib.request

    import numpy as np

    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=request["body"], headers=request["headers"],
                                                           method="POST"), timeout=30) as answer:
            status, headers, data = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read()[:300].decode(errors='replace')}"
    except OSError as error:
        return f"no answer: {error}"
    if status != 200:
        return f"HTTP {status}: {data[:300].decode(errors='replace')}"
    try:
        length = headers.get("inference-header-content-length")
        head = json.loads(data[:int(length)] if length else data)
        binary, offset, seen = data[int(length):] if length else b"", 0, set()
        for output in head["outputs"]:
            if "data" in output:
                value = np.asarray(output["data"], dtype=np.float32)
            else:
                size = output["parameters"]["binary_data_size"]
                value = np.frombuffer(binary[offset:offset + size], dtype=np.float32)
                offset += size
            if output["name"] in expected:
                want = expected[output["name"]]
                if list(output["shape"]) != list(want.shape) or not np.allclose(value, want.ravel(), rtol=1e-3, atol=1e-4):
                    return f"output '{output['name']}' {output['shape']} {value[:4]}… ≠ onnxruntime's {want.ravel()[:4]}…"
                seen.add(output["name"])
    except Exception as error:
        return f"unreadable answer ({error!r}): {data[:300]!r}"
    if seen != set(expected):
        return f"outputs {sorted(seen)}; expected {sorted(expected)}"
    return None


def run_h2load(server, request, args, out):
    """h2load --h1 at --concurrency connections: a 2 s warm-up, then --duration s measured (server CPU over that
    run only). Throughput counts 2xx answers; latencies come from h2load's per-request log."""
    import resource

    url = f"http://127.0.0.1:{server.rest_port}/v2/models/{server.model['name']}/infer"
    cmd = ["h2load", "--h1", "-t", "1", "-c", str(args.concurrency), "-m", "1", "-d", str(request["file"])]
    for name, value in request["headers"].items():
        cmd += ["-H", f"{name}: {value}"]
    subprocess.run(cmd + ["-D", "2s", url], check=True, capture_output=True, text=True)
    log = out.with_suffix(".log")
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = tree_cpu_seconds(server.proc.pid)
    done = subprocess.run(cmd + ["-D", f"{round(args.duration * 1000)}ms", "--log-file", str(log), url],
                          capture_output=True, text=True)
    cpu1 = tree_cpu_seconds(server.proc.pid)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.with_suffix(".txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"compare: h2load failed against {server.kind}:\n{done.stderr}{done.stdout}")
    text = done.stdout
    finished = re.search(r"finished in ([\d.]+)(m?s)", text)
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    done_count, ok = int(counts.group(3)), int(codes.group(1))
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    latencies = sorted(int(row[2]) for row in rows if row[1].startswith("2"))
    statuses = {}
    for row in rows:
        statuses[row[1]] = statuses.get(row[1], 0) + 1

    def percentile(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000 if latencies else float("nan")

    client = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    result = {"server": server.kind, "model": server.model["name"], "concurrency": args.concurrency,
              "seconds": seconds, "done": done_count, "ok": ok, "errors": done_count - ok, "statuses": statuses,
              "throughput": ok / seconds, "p50Ms": percentile(0.50), "p99Ms": percentile(0.99),
              "serverCpuSeconds": cpu1 - cpu0, "cpuPerRequestUs": (cpu1 - cpu0) * 1e6 / max(done_count, 1),
              "clientCpuPerRequestUs": client * 1e6 / max(done_count, 1), "bodyBytes": len(request["body"])}
    out.write_text(json.dumps(result, indent=1))
    log.unlink()
    return result


def compare_rest(args, models, servers, bin_dir, out):
    host = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"host: {host}, {os.cpu_count()} CPUs, load average {' '.join(open('/proc/loadavg').read().split()[:3])}",
          flush=True)
    summary = {}
    for name, model in models.items():
        requests, expected = rest_requests(model, out)
        runs = {}
        notes = {}
        for round_index, kind, server in fresh_servers(args.rounds, servers, model, out, bin_dir, rest=True):
            for encoding in ("json", "binary"):
                problem = rest_check(server.rest_port, name, requests[encoding], expected)
                if encoding == "binary" and kind != "switchyard":
                    if round_index == 0:
                        notes[kind] = f"binary tensor data: {problem or '200 with the right outputs'}"
                        print(f"{name:7s} {kind:10s} {notes[kind]}", flush=True)
                    continue
                if problem:
                    raise SystemExit(f"compare: {kind} answered the {name} REST {encoding} request wrongly: "
                                     f"{problem}")
                r = run_h2load(server, requests[encoding], args,
                               out / f"{name}-{kind}-rest-{encoding}-{round_index + 1}.json")
                runs.setdefault(f"{kind} rest-{encoding}", []).append(r)
                print(f"{name:7s} {kind:10s} REST {encoding:6s} round {round_index + 1}: {r['throughput']:8.0f} "
                      f"req/s  p50 {r['p50Ms']:7.2f} ms  p99 {r['p99Ms']:7.2f} ms  server CPU "
                      f"{r['cpuPerRequestUs']:7.1f} µs/req  h2load {r['clientCpuPerRequestUs']:5.1f} µs/req  "
                      f"errors {r['errors']}" + (f" (HTTP status: {r['statuses']})" if r["errors"] else ""), flush=True)
        rows = {}
        for label, results in runs.items():
            rows[label] = {key: median([r[key] for r in results])
                           for key in ("throughput", "p50Ms", "p99Ms", "cpuPerRequestUs", "clientCpuPerRequestUs",
                                       "errors")}
            rows[label]["throughputRounds"] = [r["throughput"] for r in results]
            rows[label]["cpuPerRequestUsRounds"] = [r["cpuPerRequestUs"] for r in results]
            rows[label]["bodyBytes"] = results[0]["bodyBytes"]
        summary[name] = {"rows": rows, "notes": notes}

    (out / "summary-rest.json").write_text(json.dumps(summary, indent=1))
    print()
    print(f"REST, h2load --h1 at {args.concurrency} connections, medians over {args.rounds} round(s)")
    print(f"  {'model':7s} {'server, encoding':24s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU µs/req':>11s}")
    for name, entry in summary.items():
        for label, row in entry["rows"].items():
            print(f"  {name:7s} {label:24s} {row['throughput']:8.0f} {row['p50Ms']:8.2f} {row['p99Ms']:8.2f} "
                  f"{row['cpuPerRequestUs']:11.1f}")
    print("Switchyard / peer ratios (throughput: req/s ratio, per round in brackets; p99 and CPU per request: "
          "peer ÷ Switchyard)")
    for name, entry in summary.items():
        rows = entry["rows"]
        for kind in servers:
            peer = rows.get(f"{kind} rest-json")
            if kind == "switchyard" or not peer:
                continue
            for encoding in ("json", "binary"):
                s = rows.get(f"switchyard rest-{encoding}")
                if not s:
                    continue
                per_round = ", ".join(f"{a / max(b, 1e-9):.1f}×"
                                      for a, b in zip(s["throughputRounds"], peer["throughputRounds"]))
                print(f"  {name:7s} Switchyard REST {encoding:6s} vs {kind} REST json: throughput "
                      f"{s['throughput'] / max(peer['throughput'], 1e-9):6.1f}× ({per_round})   p99 "
                      f"{peer['p99Ms'] / max(s['p99Ms'], 1e-9):6.1f}×   CPU/req "
                      f"{peer['cpuPerRequestUs'] / max(s['cpuPerRequestUs'], 1e-9):6.1f}×")
            if kind in entry["notes"]:
                print(f"  {name:7s} {kind}: {entry['notes'][kind]}")
    print(f"\nresults: {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits,mlp")
    parser.add_argument("--servers", help="default: switchyard,mlserver,grpcio (gRPC), switchyard,mlserver (REST)")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="repeat both phases; report medians")
    parser.add_argument("--perf-analyzer", action="store_true")
    parser.add_argument("--protocol", choices=("grpc", "rest"), default="grpc",
                        help="rest: v2 REST JSON (and Switchyard's binary tensor data) driven by h2load --h1")
    parser.add_argument("--bin-dir", help="take switchyard and switchyard-load from here instead of building them")
    parser.add_argument("--out")
    args = parser.parse_args()
    rest = args.protocol == "rest"
    if args.bin_dir:
        args.bin_dir = str(pathlib.Path(args.bin_dir).resolve())
    servers = (args.servers or ("switchyard,mlserver" if rest else "switchyard,mlserver,grpcio")).split(",")
    if rest and "grpcio" in servers:
        raise SystemExit("compare: grpcio_server.py speaks gRPC only; --protocol rest takes switchyard and mlserver")
    if rest and not shutil.which("h2load"):
        raise SystemExit("compare: --protocol rest needs h2load (apt-get install nghttp2-client)")

    subprocess.run(["bash", str(HERE / "install-peers.sh"), str(PEERS_VENV)], check=True)
    if pathlib.Path(sys.prefix).resolve() != PEERS_VENV.resolve():
        os.execv(str(PEERS_VENV / "bin/python"), [str(PEERS_VENV / "bin/python"), __file__] + sys.argv[1:])
    os.chdir(ROOT)
    if args.bin_dir:
        bin_dir = pathlib.Path(args.bin_dir)
    else:
        for product in ("switchyard",) if rest else ("switchyard", "switchyard-load"):
            subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH, "--product", product],
                           check=True, stdout=subprocess.DEVNULL)
        bin_dir = pathlib.Path(subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH,
                                               "--show-bin-path"], check=True, capture_output=True,
                                              text=True).stdout.strip())
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

    if rest:
        compare_rest(args, models, servers, bin_dir, out)
        return
    summary = {}

    for name, model in models.items():
        rows = {kind: {} for kind in servers}
        rounds = {kind: [] for kind in servers}
        for round_index, kind, server in fresh_servers(args.rounds, servers, model, out, bin_dir):
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
        for kind in servers:
            for key in ("saturation", "saturationP99Ms", "cpuPerRequestUs", "errors"):
                rows[kind][key] = median([r[key] for r in rounds[kind]])
            rows[kind]["saturationRounds"] = [r["saturation"] for r in rounds[kind]]
        rate = 0.5 * min(row["saturation"] for row in rows.values())
        equal = {kind: [] for kind in servers}
        for round_index, kind, server in fresh_servers(args.rounds, servers, model, out, bin_dir):
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
