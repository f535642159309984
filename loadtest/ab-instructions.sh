#!/usr/bin/env bash
# Instructions the server executes per batch-1 ModelInfer on the demo model, for two builds, counted by valgrind
# (callgrind's Ir): unlike CPU time, the count barely moves between runs (±0.05 %) on a busy or noisy machine, so a
# change of 1 % on the request path shows. Each build serves N1 and then N2 calls from a fresh start, one at a time
# (h2load, one stream: every batch has one row); (Ir(N2) − Ir(N1)) / (N2 − N1) is the cost per call, start-up left out.
#   loadtest/ab-instructions.sh OLD_BINARY NEW_BINARY [N1=200] [N2=2200]
# Needs valgrind (apt-get install valgrind). The binaries' debug sections are stripped into a
# temporary copy first: valgrind 3.19 cannot read Swift's DWARF 5. Runs take about a minute per build.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
[ $# -ge 2 ] || { sed -n '2,7p' "$0"; exit 2; }
OLD=$1 NEW=$2
N1=${3:-200}
N2=${4:-2200}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
make_work
"$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null

# instructions BINARY CALLS: the server's total Ir from start to exit, having answered CALLS calls.
instructions() {
    local binary=$1 calls=$2 p admin pid out="$work/callgrind.out"
    p=$(port)
    admin=$(port)
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" serve --model-repository models \
        --log-level warning --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$admin" --rest-listen "" \
        >"$work/gateway.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.2; done
    h2load -n "$calls" -c 1 -m 1 -d "$work/infer.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" | grep -q "$calls succeeded" \
        || { echo "not every call succeeded" >&2; exit 1; }
    kill -TERM $pid
    wait $pid || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

per_call() {
    local stripped="$work/$1" low high
    strip --strip-debug -o "$stripped" "$2"
    low=$(instructions "$stripped" "$N1")
    high=$(instructions "$stripped" "$N2")
    echo $(((high - low) / (N2 - N1)))
}

host_line
old=$(per_call old "$OLD")
new=$(per_call new "$NEW")
awk -v o="$old" -v n="$new" 'BEGIN {printf "instructions per call: old %d, new %d; ratio new/old %.4f\n", o, n, n / o}'
