#!/usr/bin/env bash
# REST infer body parsing: the gateway's simdjson shim against jansson, per body size (digits' 64 values, the
# MLP's 784, a 64×784 batch), median thread CPU time of RUNS runs. Needs clang, libsimdjson-dev, libjansson-dev.
#   Benchmarks/JSON/measure.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clang++ -std=c++17 -O2 -c Sources/CSwitchyardJSON/json_document.cpp -I Sources/CSwitchyardJSON/include -o "$work/shim.o"
clang -O2 -c Benchmarks/JSON/parse_bench.c -I Sources/CSwitchyardJSON/include -o "$work/bench.o"
clang++ "$work/shim.o" "$work/bench.o" -lsimdjson -ljansson -o "$work/parse_bench"
# Bodies as tritonclient writes them: FP32 values printed as Python floats (json.dumps), fixed seed.
python3 - "$work" <<'PY'
import json, random, struct, sys
rng = random.Random(7)
def row(n):
    return [struct.unpack("f", struct.pack("f", rng.gauss(0, 1)))[0] for _ in range(n)]
for name, rows, width in (("digits", 1, 64), ("mlp", 1, 784), ("mlp-batch64", 64, 784)):
    body = {"inputs": [{"name": "input", "shape": [rows, width], "datatype": "FP32", "data": row(rows * width)}]}
    open(f"{sys.argv[1]}/{name}.json", "w").write(json.dumps(body))
PY
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for body in digits mlp mlp-batch64; do
    (cd "$work" && ./parse_bench "$body.json" "$RUNS")
done
