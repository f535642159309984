#!/usr/bin/env bash
# Instructions the server executes per batch-1 ModelInfer on the demo model, for two builds, counted by valgrind
# (callgrind's Ir): unlike CPU time, the count barely moves between runs (±0.05 %) on a busy or noisy machine, so a
# change of 1 % on the request path shows. Each build serves N1 and then N2 calls from a fresh start, one at a time
# (h2load, one stream: every batch has one row); (Ir(N2) − Ir(N1)) / (N2 − N1) is the cost per call, start-up left out.
#   loadtest/ab-instructions.sh OLD_BINARY NEW_BINARY [N1=200] [N2=2200]
# OLD_ARGS and NEW_ARGS (environment) add `serve` arguments to one side, as in ab-server-cpu.sh. Work a server does on
# a clock (a fleet replica's lease and statistics) lands in those counts too, inflated by valgrind's slowdown (~50×):
# CLOCK=1 (environment) runs each side a third time, N2 calls paced at half the rate the second run reached: the same
# calls over more seconds give the clock work per second under load, which is then taken out of the per-call figure
# (Ir = start-up + per call × calls + clock rate × seconds, solved from the three runs).
# KEEP=DIR keeps the callgrind files (old.N1, old.N2, new.N1, new.N2) for loadtest/instructions_by_function.py.
# Needs valgrind (apt-get install valgrind). The binaries' debug sections are stripped into a
# temporary copy first: valgrind 3.19 cannot read Swift's DWARF 5. Runs take about a minute per build.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
OLD=$1 NEW=$2
N1=${3:-200}
N2=${4:-2200}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
make_work
"$venv/bin/python" loadtest/grpc_body.py infer digits 1 "$work/infer.bin" >/dev/null

# instructions BINARY CALLS [ARGS]: "IR SECONDS": the server's total Ir from start to exit, having answered CALLS
# calls (at RPS calls per second when set), and the seconds from listening to the stop.
instructions() {
    local binary=$1 calls=$2 p admin pid out="$work/callgrind.out" extra=()
    read -r -a extra <<<"${3:-}"
    p=$(port)
    admin=$(port)
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" serve --model-repository models \
        --log-level warning --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$admin" --rest-listen "" \
        "${extra[@]}" >"$work/gateway.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.2; done
    local started=$EPOCHREALTIME pace=()
    [[ -n "${RPS:-}" ]] && pace=(--rps "$RPS")
    h2load -n "$calls" -c 1 -m 1 "${pace[@]}" -d "$work/infer.bin" -H 'content-type: application/grpc' \
        -H 'te: trailers' "http://127.0.0.1:$p/inference.GRPCInferenceService/ModelInfer" | grep -q "$calls succeeded" \
        || { echo "not every call succeeded" >&2; exit 1; }
    local stopped=$EPOCHREALTIME
    kill -TERM $pid
    wait $pid || true
    if [[ -n "${KEEP:-}" && -z "${RPS:-}" ]]; then mkdir -p "$KEEP" && cp "$out" "$KEEP/$(basename "$binary").$calls"; fi
    echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out") $(echo "$stopped - $started" | bc)"
}

# per_call NAME BINARY ARGS: "PER_CALL CLOCK_RATE": instructions per call (clock work taken out when CLOCK is set)
# and the clock work in instructions per second (0 without CLOCK).
per_call() {
    local stripped="$work/$1" low high paced="0 0"
    strip --strip-debug -o "$stripped" "$2"
    low=$(instructions "$stripped" "$N1" "${3:-}")
    high=$(instructions "$stripped" "$N2" "${3:-}")
    if [[ -n "${CLOCK:-}" ]]; then
        paced=$(RPS=$(echo "$high" | awk -v n="$N2" '{r = int(n / $2 / 2); print (r < 1 ? 1 : r)}') \
            instructions "$stripped" "$N2" "${3:-}")
    fi
    echo "$low $high $paced" | awk -v n=$((N2 - N1)) -v clock="${CLOCK:-}" '{
        rate = clock == "" ? 0 : ($5 - $3) / ($6 - $4)
        printf "%.0f %.0f\n", ($3 - $1 - rate * ($4 - $2)) / n, rate
    }'
}

host_line
read -r old old_rate <<<"$(per_call old "$OLD" "${OLD_ARGS:-}")"
read -r new new_rate <<<"$(per_call new "$NEW" "${NEW_ARGS:-}")"
if [[ -n "${CLOCK:-}" ]]; then
    echo "clock work under load, instructions per second: old $old_rate, new $new_rate"
fi
awk -v o="$old" -v n="$new" 'BEGIN {printf "instructions per call: old %d, new %d; ratio new/old %.4f\n", o, n, n / o}'
