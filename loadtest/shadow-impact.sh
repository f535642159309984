#!/usr/bin/env bash
# Primary latency and throughput with 100% shadow traffic versus none, on the demo model: `digits` served
# by version 2, every call mirrored to version 1 (shadow on) or not (shadow off). perf_analyzer measures
#   saturation: closed loop at CONCURRENCY streams → throughput and p99;
#   half load: Poisson arrivals at half the shadow-off saturated throughput → p99.
# Runs alternate off/on ROUNDS times to spread drift on a shared machine; prints every run and the medians.
# Stability is relaxed (-s 60) because the reference machine is shared.
# A third mode, "gated", mirrors every call too but with sink.shadow_max_host_cpu (HOST_CPU): calls are
# not mirrored while the host's CPUs are busier than that.
#   loadtest/shadow-impact.sh [CONCURRENCY=16] [ROUNDS=2] [WINDOW_MS=4000] [HOST_CPU=0.8]
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
CONCURRENCY=${1:-16}
ROUNDS=${2:-2}
WINDOW=${3:-4000}
HOST_CPU=${4:-0.8}
perf="$venv/bin/perf_analyzer"
[ -x "$perf" ] || { echo "perf_analyzer not found in $venv (scripts/install-triton-clients.sh)"; exit 1; }
bin=${SWITCHYARD_BIN:-$(swift build -c release --show-bin-path)/switchyard}
[ -x "$bin" ] || swift build -c release --product switchyard >/dev/null
make_work

# A copy of the demo repository with a loose latency target, so that load shedding does not end the runs.
mkdir -p "$work/repo"
cp -r models/digits "$work/repo/"
sed -i 's/^slo_ms:.*/slo_ms: 500/' "$work/repo/digits/config.yaml"
cat >"$work/off.yaml" <<YAML
model_repository: $work/repo
routes:
  - {model: digits, policy: fixed, versions: [{version: 2}]}
YAML
cat >"$work/on.yaml" <<YAML
model_repository: $work/repo
routes:
  - {model: digits, policy: fixed, versions: [{version: 2}], shadow: {version: 1, fraction: 1.0}}
sink: {directory: $work/comparisons}
YAML
cat >"$work/gated.yaml" <<YAML
model_repository: $work/repo
routes:
  - {model: digits, policy: fixed, versions: [{version: 2}], shadow: {version: 1, fraction: 1.0}}
sink: {directory: $work/comparisons-gated, shadow_max_host_cpu: $HOST_CPU}
YAML

# measure MODE ARGS... → prints "throughput p99_us" of one perf_analyzer run against a fresh gateway
measure() {
    local mode=$1; shift
    local p; p=$(port)
    local admin; admin=$(port)
    "$bin" serve --config "$work/$mode.yaml" --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$admin" \
        >"$work/$mode.log" 2>&1 &
    local pid=$!
    wait_port "$p"
    rm -f "$work/out.csv"
    local cpu0; cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    local calls0; calls0=$(calls "$admin")
    "$perf" -m digits -i grpc -u "127.0.0.1:$p" -p "$WINDOW" -s 60 -r 6 --percentile=99 -f "$work/out.csv" "$@" \
        >"$work/perf.log" 2>&1 || { tail -3 "$work/perf.log" >&2; }
    local cpu1; cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    local calls1; calls1=$(calls "$admin")
    kill -TERM "$pid"; wait "$pid" || true
    python3 - "$work/out.csv" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$((calls1 - calls0))" <<'PY'
import csv, os, sys
ticks, hz, calls = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu_us = ticks / hz * 1e6 / max(1, calls)  # server CPU (all threads) per primary call
if not os.path.exists(sys.argv[1]):
    print(f"nan nan {cpu_us:.1f}")  # perf_analyzer found no stable measurement (its reason is printed above)
else:
    row = list(csv.DictReader(open(sys.argv[1])))[-1]
    print(row["Inferences/Second"], row["p99 latency"], f"{cpu_us:.1f}")
PY
}

# calls ADMIN_PORT → primary calls the gateway has answered (its switchyard_requests_total)
calls() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^switchyard_requests_total/ {s += $NF} END {printf "%d", s}'
}

median() { grep -v nan | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "saturation: $CONCURRENCY concurrent streams"
for round in $(seq "$ROUNDS"); do
    for mode in off on gated; do
        read -r tput p99 cpu < <(measure "$mode" --concurrency-range "$CONCURRENCY")
        echo "  round $round shadow $mode: $tput inferences/s, p99 $p99 µs, server CPU $cpu µs per call"
        echo "$tput" >>"$work/sat-$mode-tput"; echo "$p99" >>"$work/sat-$mode-p99"; echo "$cpu" >>"$work/sat-$mode-cpu"
    done
done
off_tput=$(median <"$work/sat-off-tput"); on_tput=$(median <"$work/sat-on-tput")
rate=$(python3 -c "print(int(float('$off_tput') / 2))")
echo "half load: Poisson arrivals at $rate requests/s"
for round in $(seq "$ROUNDS"); do
    for mode in off on gated; do
        read -r tput p99 cpu < <(measure "$mode" --request-rate-range "$rate" --request-distribution poisson)
        echo "  round $round shadow $mode: $tput inferences/s, p99 $p99 µs, server CPU $cpu µs per call"
        echo "$p99" >>"$work/half-$mode-p99"
    done
done
off_p99=$(median <"$work/half-off-p99"); on_p99=$(median <"$work/half-on-p99")
python3 - "$off_tput" "$on_tput" "$off_p99" "$on_p99" "$work" <<'PY'
import statistics, sys
off_t, on_t, off_p, on_p = map(float, sys.argv[1:5])
work = sys.argv[5]
def column(name):
    return [float(line) for line in open(f"{work}/{name}") if line.strip() not in ("", "nan")]
def paired(on, off):
    # Each round's shadow-on run against the shadow-off run just before it: drift between rounds cancels.
    return statistics.median(a / b for a, b in zip(on, off)) if on and off else float("nan")
tput_ratio = paired(column("sat-on-tput"), column("sat-off-tput"))
p99_ratio = paired(column("half-on-p99"), column("half-off-p99"))
print(f"median saturated throughput: off {off_t:.0f}/s, on {on_t:.0f}/s ({(on_t / off_t - 1) * 100:+.1f}%; "
      f"median of per-round ratios {(tput_ratio - 1) * 100:+.1f}%; goal within -5%)")
gated_tput = paired(column("sat-gated-tput"), column("sat-off-tput"))
gated_p99 = paired(column("half-gated-p99"), column("half-off-p99"))
print(f"gated (shadow_max_host_cpu): saturated throughput, median of per-round ratios {(gated_tput - 1) * 100:+.1f}%; "
      f"half-load p99 {gated_p99:.2f}×")
off_cpu, on_cpu = statistics.median(column("sat-off-cpu")), statistics.median(column("sat-on-cpu"))
print(f"median server CPU per primary call at saturation: off {off_cpu:.1f} µs, on {on_cpu:.1f} µs "
      f"(shadowing adds {on_cpu - off_cpu:.1f} µs per mirrored call)")
print(f"median half-load p99: off {off_p:.0f} µs, on {on_p:.0f} µs ({on_p / off_p:.2f}×; "
      f"median of per-round ratios {p99_ratio:.2f}×; goal ≤ 1.2×)")
PY
grep -h "comparison sink stopped" "$work/on.log" | tail -1 || true
echo "gated: $(grep -h "comparison sink stopped" "$work/gated.log" | tail -1 | grep -o "recorded=[0-9]*") pairs compared in its last run"
