#!/usr/bin/env python3
"""A scikit-learn StandardScaler + MLPClassifier pipeline against the same MLP exported bare, through the fused
engine: the scaler is folded into the first layer at load, so the two should run at the same speed.

Trains one pipeline (784 features, hidden layers 256 and 128, 10 classes), exports it with skl2onnx's default
options (zipmap off) and exports its MLPClassifier step alone, then times both with switchyard-engine-bench in
alternating rounds and prints the median time per batch of each and their ratio per batch size.

  Benchmarks/Engine/pipeline.sh [--rounds 5] [--rows 1,64]
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile

import numpy as np
from hostinfo import cpu_name
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", default="1,64")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 784)).astype(np.float32) * 3 + 1
    y = (x[:, :10].argmax(axis=1)).astype(int)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=20, random_state=0))
    pipe.fit(x, y)
    folder = tempfile.mkdtemp()
    paths = {
        "pipeline": os.path.join(folder, "pipeline.onnx"),
        "bare": os.path.join(folder, "bare.onnx"),
    }
    with open(paths["pipeline"], "wb") as f:
        f.write(to_onnx(pipe, x[:1], options={"zipmap": False}).SerializeToString())
    with open(paths["bare"], "wb") as f:
        f.write(to_onnx(pipe[-1], x[:1], options={"zipmap": False}).SerializeToString())

    times = {name: {} for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            out = subprocess.run(
                [args.bench, "--no-reference", "--json", "--runs", "5", "--rows", args.rows, path],
                capture_output=True, text=True, check=True,
            ).stdout
            for record in json.loads(out)["timings"]:
                if record["engine"] != "reference":
                    times[name].setdefault(record["rows"], []).append(record["microseconds"])
    print(f"host: {cpu_name(platform.processor())}")
    print("rows  bare µs/batch  pipeline µs/batch  pipeline/bare (median of per-round ratios)")
    for rows in sorted(times["bare"]):
        bare = times["bare"][rows]
        piped = times["pipeline"][rows]
        ratios = sorted(p / b for p, b in zip(piped, bare))
        print(f"{rows:4d}  {np.median(bare):13.1f}  {np.median(piped):17.1f}  {ratios[len(ratios) // 2]:.3f}")


if __name__ == "__main__":
    main()
