#!/usr/bin/env python3
"""Compares the fused engine with the reference engine and onnxruntime on the same ONNX files, one thread.

  python3 Benchmarks/Engine/compare.py [--runs 7] [--bench PATH] [--rows 1,4,16,64,256]

Models: the demo models/digits/2/model.onnx (64→256→128→10) and an MLP 784→1024→1024→10 (Gemm+Relu, the
layout torch exports for nn.Linear) written with a fixed seed to --workdir. The Swift side is the
switchyard-engine-bench executable (built here in release mode unless --bench is given); onnxruntime runs in
this process with intra_op_num_threads=1. For each batch size the Swift engines and onnxruntime alternate
--rounds times; each figure is the median over those rounds of the median of --runs runs, and a run repeats
the batch for at least 30 ms. Prints a Markdown table.

The BLAS column runs the same network through Debian's libopenblas (`cblas_sgemm` called with ctypes, one
thread; `--blas numpy` uses the OpenBLAS numpy's wheel bundles instead) into preallocated buffers, then the bias
add and ReLU as separate numpy passes: a tuned GEMM with an unfused epilogue, the anchor for "the speed of the best
CPU libraries". Benchmarks/Engine/compare.sh installs libopenblas-dev if needed and unsets OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE (which slow OpenBLAS down on this machine) for the run.

--int8 adds the fused engine's INT8 path (on the first of --paths) and onnxruntime's own dynamic quantization of
the same network: onnxruntime.quantization.quantize_dynamic with weight_type QInt8, run on a copy whose Gemm
nodes are rewritten as the equivalent MatMul + Add (quantize_dynamic leaves Gemm in FP32), and reports digits
top-1 accuracy for both.
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import time

# numpy's BLAS (the OpenBLAS its wheel bundles) on one thread, like every other engine here; set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import onnx
import onnxruntime as ort
from hostinfo import cpu_name
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


def write_layer(path, k, n, seed=7):
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "weight", "bias"], ["z"], name="fc", transB=1),
         helper.make_node("Relu", ["z"], ["output"], name="relu")], "layer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", n])],
        [numpy_helper.from_array((rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), "weight"),
         numpy_helper.from_array((rng.standard_normal(n) * 0.1).astype(np.float32), "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def gemm_as_matmul(path, out):
    """The model with each Gemm (alpha = beta = 1) rewritten as MatMul + Add, the form quantize_dynamic quantizes."""
    model = onnx.load(path)
    arrays = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0 and not attributes.get("transA")
        weight = numpy_helper.to_array(arrays[node.input[1]])
        if attributes.get("transB"):
            weight = weight.T
        name = node.input[1] + ".matmul"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), name))
        if len(node.input) > 2:
            nodes.append(helper.make_node("MatMul", [node.input[0], name], [node.output[0] + ".mm"], name=node.name))
            nodes.append(helper.make_node("Add", [node.output[0] + ".mm", node.input[2]], [node.output[0]],
                                          name=node.name + ".bias"))
        else:
            nodes.append(helper.make_node("MatMul", [node.input[0], name], [node.output[0]], name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, out)


def quantized(path, workdir):
    """onnxruntime's dynamic INT8 quantization of the model (QInt8 weights), written next to the work files."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    base = os.path.join(workdir, os.path.basename(os.path.dirname(os.path.dirname(path))) + "_"
                        + os.path.splitext(os.path.basename(path))[0])
    gemmless, out = base + ".matmul.onnx", base + ".qdq-int8.onnx"
    gemm_as_matmul(path, gemmless)
    quantize_dynamic(gemmless, out, weight_type=QuantType.QInt8)
    return out


def flops_per_row(path):
    model = onnx.load(path)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            dims = shapes[node.input[1]]
            total += 2 * dims[0] * dims[1]
    return total


def seconds_per_call(call, runs):
    """Seconds per `call()`, after one call to warm up: the median of `runs` runs, each repeating it for ≥ 30 ms."""
    call()
    samples = []
    for _ in range(runs):
        iterations = 0
        start = time.perf_counter()
        while True:
            call()
            iterations += 1
            elapsed = time.perf_counter() - start
            if elapsed >= 0.03:
                break
        samples.append(elapsed / iterations)
    samples.sort()
    return samples[len(samples) // 2]


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
        results[rows] = seconds_per_call(functools.partial(session.run, None, feed), runs)
    return results


def blas_network(path):
    """The model as (weight [k, n] contiguous, bias, relu) steps for numpy, or None when it has other ops."""
    model = onnx.load(path)
    arrays = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    steps = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            weight = arrays[node.input[1]]
            steps.append([np.ascontiguousarray(weight.T if trans_b else weight),
                          arrays[node.input[2]] if len(node.input) > 2 else None, False])
        elif node.op_type == "MatMul" and node.input[1] in arrays:
            steps.append([np.ascontiguousarray(arrays[node.input[1]]), None, False])
        elif node.op_type == "Add" and steps and node.input[1] in arrays and steps[-1][1] is None:
            steps[-1][1] = arrays[node.input[1]].reshape(-1)
        elif node.op_type == "Relu" and steps:
            steps[-1][2] = True
        elif node.op_type in ("Softmax", "Identity"):
            continue
        else:
            return None
    return steps


class DebianOpenBLAS:
    """cblas_sgemm of Debian's libopenblas (package libopenblas-dev), on one thread."""

    def __init__(self):
        import ctypes
        import ctypes.util

        path = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"
        if not os.path.exists(path):
            path = ctypes.util.find_library("openblas")
        if not path:
            raise SystemExit("libopenblas not found: apt-get install libopenblas-dev (or use --blas numpy)")
        self.lib = ctypes.CDLL(path)
        self.lib.openblas_set_num_threads(1)
        self.lib.openblas_get_config.restype = ctypes.c_char_p
        self.name = "Debian libopenblas " + self.lib.openblas_get_config().decode()
        self.sgemm = self.lib.cblas_sgemm
        c_int, c_float, c_void_p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.sgemm.argtypes = [c_int, c_int, c_int, c_int, c_int, c_int, c_float, c_void_p, c_int, c_void_p, c_int,
                               c_float, c_void_p, c_int]
        self.sgemm.restype = None

    def matmul(self, a, b, out):
        """out = a @ b, row-major, every array C-contiguous float32."""
        m, k = a.shape
        n = b.shape[1]
        self.sgemm(101, 111, 111, m, n, k, 1.0, a.ctypes.data, k, b.ctypes.data, n, 0.0, out.ctypes.data, n)


class NumpyBLAS:
    """numpy's matmul (the OpenBLAS its wheel bundles)."""

    def __init__(self):
        self.name = blas_name()

    @staticmethod
    def matmul(a, b, out):
        np.matmul(a, b, out=out)


def time_blas(blas, steps, rows, runs):
    """Seconds per batch of `rows` through `steps` with `blas` (median of `runs` runs of ≥ 30 ms)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(rows, steps[0][0].shape[0])).astype(np.float32)
    buffers = [np.empty((rows, w.shape[1]), dtype=np.float32) for w, _, _ in steps]

    def forward():
        current = x
        for (weight, bias, relu), out in zip(steps, buffers):
            blas.matmul(current, weight, out)
            if bias is not None:
                out += bias
            if relu:
                np.maximum(out, 0, out=out)
            current = out

    return seconds_per_call(forward, runs)


def blas_name():
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: the name is only cosmetic
        return "numpy's BLAS"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", default="1,4,16,64,256")
    parser.add_argument("--bench", help="path of a built switchyard-engine-bench")
    parser.add_argument("--workdir", default="/tmp/switchyard-engine-bench")
    parser.add_argument("--paths", default="avx512,avx2", help="fused kernel paths to time")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the Swift engines and onnxruntime this many times per batch size")
    parser.add_argument("--layers", action="store_true",
                        help="also single GEMM+bias+ReLU layers 512², 1024², 1024×4096, 4096×1024")
    parser.add_argument("--bf16", action="store_true", help="also time BF16 weights and report their accuracy cost")
    parser.add_argument("--int8", action="store_true",
                        help="also time INT8 (the fused engine's and onnxruntime's quantize_dynamic model)")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) reference engine")
    parser.add_argument("--blas", choices=["debian", "numpy"], default="debian",
                        help="the BLAS column: Debian's libopenblas (default) or numpy's bundled OpenBLAS")
    args = parser.parse_args()
    rows_list = [int(r) for r in args.rows.split(",")]
    os.makedirs(args.workdir, exist_ok=True)
    mlp = os.path.join(args.workdir, "mlp_784_1024_1024_10.onnx")
    write_mlp(mlp, [784, 1024, 1024, 10])
    models = [os.path.join(ROOT, "models", "digits", "2", "model.onnx"), mlp]
    names = {models[0]: "digits v2 64→256→128→10", mlp: "MLP 784→1024→1024→10"}
    if args.layers:
        # Single GEMM + bias + ReLU layers (Gemm + Relu with the relu as the output).
        for k, n in [(512, 512), (1024, 1024), (1024, 4096), (4096, 1024)]:
            path = os.path.join(args.workdir, f"layer_{k}x{n}.onnx")
            write_layer(path, k, n)
            models.append(path)
            names[path] = f"layer {k}×{n} + ReLU"


    bench = args.bench
    if bench is None:
        scratch = os.path.join(ROOT, ".build-bench")
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", scratch, "--product",
                        "switchyard-engine-bench"], cwd=ROOT, check=True, stdout=sys.stderr)
        bench = os.path.join(scratch, "release", "switchyard-engine-bench")
    blas = DebianOpenBLAS() if args.blas == "debian" else NumpyBLAS()
    print(f"CPU: {cpu_name()}; 1 thread; median of {args.runs} runs × {args.rounds} alternating rounds; onnxruntime {ort.__version__}; "
          f"BLAS: {blas.name} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}); "
          f"load average before: {os.getloadavg()[0]:.2f}\n")
    int8 = f"fused-{args.paths.split(',')[0]}-int8"
    order = [f"fused-{p}" for p in args.paths.split(",")] + (["fused-avx512-bf16"] if args.bf16 else []) + \
        ([int8] if args.int8 else []) + ([] if args.no_reference else ["reference"])
    header = ["model", "M"] + [f"{e} µs (GFLOP/s)" for e in order] + [
        "onnxruntime µs (GFLOP/s)"] + (["onnxruntime int8 µs (GFLOP/s)"] if args.int8 else []) + [
        "BLAS + epilogue µs (GFLOP/s)", f"{order[0]} vs onnxruntime", f"{order[0]} vs BLAS"] + (
        [f"{int8} vs {order[0]}", f"{int8} vs onnxruntime int8"] if args.int8 else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    allocations = set()
    for path in models:
        name = names[path]
        flops = flops_per_row(path)
        steps = blas_network(path)
        ort_int8_path = quantized(path, args.workdir) if args.int8 else None
        for rows in rows_list:
            # The Swift engines and onnxruntime run back to back for each batch size, so that both see the same
            # machine (other processes on a shared machine move every figure).
            command = [bench, "--json", "--runs", str(args.runs), "--rows", str(rows), "--paths", args.paths, path]
            if args.no_reference or "layer" in name:
                command.insert(1, "--no-reference")
            if args.bf16:
                command.insert(1, "--bf16")
            if args.int8:
                command.insert(1, "--int8")
            swift_rounds, ort_rounds, blas_rounds, ort_int8_rounds = [], [], [], []
            for _ in range(args.rounds):
                swift_rounds.append(json.loads(subprocess.run(command, check=True, capture_output=True,
                                                              text=True).stdout)["timings"])
                ort_rounds.append(time_onnxruntime(path, [rows], args.runs)[rows])
                if ort_int8_path:
                    ort_int8_rounds.append(time_onnxruntime(ort_int8_path, [rows], args.runs)[rows])
                if steps is not None:
                    blas_rounds.append(time_blas(blas, steps, rows, args.runs))
            # Per engine, the round with the median time.
            swift = []
            for engine in order:
                found = sorted((m for r in swift_rounds for m in r if m["engine"] == engine),
                               key=lambda m: m["microseconds"])
                if found:
                    swift.append(found[len(found) // 2])
            ort_seconds = sorted(ort_rounds)[len(ort_rounds) // 2]
            cells = [name, str(rows)]
            first = int8_us = None
            for engine in order:
                match = [m for m in swift if m["engine"] == engine]
                if not match:
                    cells.append("–")
                    continue
                us = match[0]["microseconds"]
                first = us if first is None else first
                int8_us = us if engine == int8 else int8_us
                cells.append(f"{us:.1f} ({match[0]['gflops']:.1f})")
                if engine.startswith("fused") and match[0].get("allocationsPerBatch") is not None:
                    allocations.add(match[0]["allocationsPerBatch"])
            ort_us = ort_seconds * 1e6
            cells.append(f"{ort_us:.1f} ({flops * rows / ort_seconds / 1e9:.1f})")
            ort_int8_us = sorted(ort_int8_rounds)[len(ort_int8_rounds) // 2] * 1e6 if ort_int8_rounds else None
            if args.int8:
                cells.append(f"{ort_int8_us:.1f} ({flops * rows / ort_int8_us / 1e3:.1f})")
            blas_seconds = sorted(blas_rounds)[len(blas_rounds) // 2] if blas_rounds else None
            cells.append(f"{blas_seconds * 1e6:.1f} ({flops * rows / blas_seconds / 1e9:.1f})" if blas_seconds else "–")
            cells.append(f"{ort_us / first:.2f}×" if first else "–")
            cells.append(f"{blas_seconds * 1e6 / first:.2f}×" if first and blas_seconds else "–")
            if args.int8:
                cells.append(f"{first / int8_us:.2f}×" if first and int8_us else "–")
                cells.append(f"{ort_int8_us / int8_us:.2f}×" if int8_us else "–")
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\nheap allocations per batch in the fused engine (100 batches counted per row): {sorted(allocations)}")
    accuracy_table(args, bench, models[0])
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def accuracy_table(args, bench, digits_model):
    """Top-1 accuracy of each engine on the digits test split (the 450 images training held out)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, x_test, _, y_test = train_test_split(digits.data.astype(np.float32), digits.target, test_size=0.25,
                                            random_state=0, stratify=digits.target)
    path = os.path.join(args.workdir, "digits_test.json")
    with open(path, "w") as f:
        json.dump({"pixels": x_test.tolist(), "labels": [int(v) for v in y_test]}, f)
    command = [bench, "--json", "--runs", "1", "--rows", "1", "--paths", args.paths, "--accuracy", path,
               digits_model]
    if args.bf16:
        command.insert(1, "--bf16")
    if args.int8:
        command.insert(1, "--int8")
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    session = ort.InferenceSession(digits_model, providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x_test})[0]
    print(f"\ndigits v2 on its {len(y_test)} held-out test images (first output, logits):\n")
    print("| engine | top-1 accuracy | max abs difference from the reference engine |")
    print("|---|---|---|")
    for entry in report["accuracy"]:
        difference = entry.get("maxDifferenceFromReference")
        print(f"| {entry['engine']} | {entry['accuracy']:.4f} | {'–' if difference is None else f'{difference:.2e}'} |")
    print(f"| onnxruntime | {np.mean(np.argmax(logits, axis=1) == y_test):.4f} | – |")
    if args.int8:
        session = ort.InferenceSession(quantized(digits_model, args.workdir), providers=["CPUExecutionProvider"])
        logits = session.run(None, {session.get_inputs()[0].name: x_test})[0]
        print(f"| onnxruntime quantize_dynamic (QInt8) | {np.mean(np.argmax(logits, axis=1) == y_test):.4f} | – |")


if __name__ == "__main__":
    main()
