#!/usr/bin/env python3
"""Compares the fused engine with the reference engine and onnxruntime on the same ONNX files, one thread.

  python3 Benchmarks/Engine/compare.py [--runs 7] [--bench PATH] [--rows 1,4,16,64,256]

Models: the demo models/digits/2/model.onnx (64→256→128→10) and an MLP 784→1024→1024→10 (Gemm+Relu, the
layout torch exports for nn.Linear) written with a fixed seed to --workdir. The Swift side is the
switchyard-engine-bench executable (built here in release mode unless --bench is given); onnxruntime runs in
this process with intra_op_num_threads=1. Every figure is the median of --runs runs; a run repeats the batch
for at least 30 ms. Prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_mlp(path, widths, seed=1024):
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    current = "input"
    for index, (k, n) in enumerate(zip(widths, widths[1:])):
        initializers.append(numpy_helper.from_array(
            (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), f"fc{index}.weight"))
        initializers.append(numpy_helper.from_array((rng.standard_normal(n) * 0.1).astype(np.float32),
                                                    f"fc{index}.bias"))
        out = "output" if index == len(widths) - 2 else f"h{index}"
        nodes.append(helper.make_node("Gemm", [current, f"fc{index}.weight", f"fc{index}.bias"], [out],
                                      name=f"fc{index}", transB=1))
        if index < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{index}"], name=f"relu{index}"))
            current = f"r{index}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", widths[0]])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", widths[-1]])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def flops_per_row(path):
    model = onnx.load(path)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            dims = shapes[node.input[1]]
            total += 2 * dims[0] * dims[1]
    return total


def time_onnxruntime(path, rows_list, runs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    info = session.get_inputs()[0]
    rng = np.random.default_rng(0)
    results = {}
    for rows in rows_list:
        feed = {info.name: rng.uniform(0, 16, size=(rows, info.shape[1])).astype(np.float32)}
        session.run(None, feed)
        samples = []
        for _ in range(runs):
            iterations = 0
            start = time.perf_counter()
            while True:
                session.run(None, feed)
                iterations += 1
                elapsed = time.perf_counter() - start
                if elapsed >= 0.03:
                    break
            samples.append(elapsed / iterations)
        samples.sort()
        results[rows] = samples[len(samples) // 2]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", default="1,4,16,64,256")
    parser.add_argument("--bench", help="path of a built switchyard-engine-bench")
    parser.add_argument("--workdir", default="/tmp/switchyard-engine-bench")
    parser.add_argument("--paths", default="avx512,avx2", help="fused kernel paths to time")
    args = parser.parse_args()
    rows_list = [int(r) for r in args.rows.split(",")]
    os.makedirs(args.workdir, exist_ok=True)
    mlp = os.path.join(args.workdir, "mlp_784_1024_1024_10.onnx")
    write_mlp(mlp, [784, 1024, 1024, 10])
    models = [os.path.join(ROOT, "models", "digits", "2", "model.onnx"), mlp]

    bench = args.bench
    if bench is None:
        scratch = os.path.join(ROOT, ".build-bench")
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", scratch, "--product",
                        "switchyard-engine-bench"], cwd=ROOT, check=True, stdout=sys.stderr)
        bench = os.path.join(scratch, "release", "switchyard-engine-bench")
    output = subprocess.run([bench, "--json", "--runs", str(args.runs), "--rows", args.rows, "--paths", args.paths]
                            + models, check=True, capture_output=True, text=True).stdout
    swift = json.loads(output)

    print(f"CPU: {cpu_name()}; 1 thread; median of {args.runs} runs; onnxruntime {ort.__version__}\n")
    order = [f"fused-{p}" for p in args.paths.split(",")] + ["reference"]
    engines = [e for e in order if any(m["engine"] == e for m in swift)]
    header = ["model", "M"] + [f"{e} µs (GFLOP/s)" for e in engines] + ["onnxruntime µs (GFLOP/s)",
                                                                         f"{engines[0]} vs onnxruntime"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for path in models:
        name = "digits/2 (64→256→128→10)" if "digits" in path else "MLP 784→1024→1024→10"
        key = "digits/2" if "digits" in path else "mlp_784_1024_1024_10"
        flops = flops_per_row(path)
        ort_times = time_onnxruntime(path, rows_list, args.runs)
        for rows in rows_list:
            cells = [name, str(rows)]
            fastest = None
            for engine in engines:
                match = [m for m in swift if m["model"] == key and m["engine"] == engine and m["rows"] == rows]
                if match:
                    us = match[0]["microseconds"]
                    cells.append(f"{us:.1f} ({match[0]['gflops']:.1f})")
                    if engine == engines[0]:
                        fastest = us
                else:
                    cells.append("–")
            ort_us = ort_times[rows] * 1e6
            cells.append(f"{ort_us:.1f} ({flops * rows / ort_times[rows] / 1e9:.1f})")
            cells.append(f"{ort_us / fastest:.2f}×" if fastest else "–")
            print("| " + " | ".join(cells) + " |")
    allocations = {m["allocationsPerBatch"] for m in swift if m["engine"].startswith("fused")}
    print(f"\nheap allocations per batch, fused engine: {sorted(a for a in allocations if a is not None)}")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
