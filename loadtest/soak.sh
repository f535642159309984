#!/usr/bin/env bash
# Soak test: a release gateway on the demo models, with one route mirroring every call to a shadow (comparison
# records on disk, rotated) and one routed by a bandit, under open-loop load at 70 % of its measured capacity
# for MINUTES. Every few seconds it samples the gateway's RSS, open file descriptors, threads and CPU into a CSV;
# at the end it joins the load generator's per-interval p99 and judges whether anything leaks.
#   loadtest/soak.sh [MINUTES] [--rate R] [--seconds S] [--sample S] [--bin DIR]
#     MINUTES    how long to run (default 30); --seconds S instead for short runs
#     --rate R   total requests/s (default: 70 % of the capacity found by a 20 s ramp)
#     --sample S sampling and reporting interval in seconds (default 5)
#     --bin DIR  use switchyard and switchyard-load from DIR instead of building release binaries
#     --max-errors F  fraction of requests that may fail before the run counts as FAILED (default 0.01)
#   env: SWITCHYARD_SCRATCH (build directory, default .build), RESULTS (default loadtest/results)
# Exit status: 0 flat, 1 a leak (RSS growing in the second half, fds or threads growing) or > 1 % failed
# requests, 2 the run itself failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh

minutes=30 seconds= rate= sample=5 bin= max_errors=0.01
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --sample) sample=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --max-errors) max_errors=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: unexpected argument '$1'" >&2; exit 2; }
           minutes=$1; shift ;;
    esac
done
[ -n "$seconds" ] || seconds=$(python3 -c "print(round($minutes * 60))")

if [ -z "$bin" ]; then
    scratch=${SWITCHYARD_SCRATCH:-.build}
    swift build -c release --scratch-path "$scratch" --product switchyard >/dev/null
    swift build -c release --scratch-path "$scratch" --product switchyard-load >/dev/null
    bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
fi
for tool in switchyard switchyard-load; do
    [ -x "$bin/$tool" ] || { echo "soak: $bin/$tool not found" >&2; exit 2; }
done

results=${RESULTS:-loadtest/results}
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$results/soak-$stamp"
work=$(mktemp -d)
port=$(port) admin_port=$(port)

# digits: canary 80/20, every call mirrored to the other version, records written and rotated (4 × 4 MiB).
# ranker (a copy of digits): Thompson-sampling bandit rewarded by latency.
mkdir -p "$work/models"
cp -r models/digits "$work/models/digits"
cp -r models/digits "$work/models/ranker"
cat >"$work/switchyard.yaml" <<EOF
routes:
  - model: digits
    policy: canary
    versions: [{version: 1, weight: 80}, {version: 2, weight: 20}]
    shadow: {fraction: 1.0}
  - model: ranker
    policy: bandit
    versions: [{version: 1}, {version: 2}]
    bandit: {algorithm: thompson, reward: latency, latency_target_ms: 5}
sink:
  directory: $work/comparisons
  max_file_bytes: 4194304
  max_files: 4
admin:
  state_file: $work/routes-state.json
  audit_log: $work/audit.jsonl
EOF

"$bin/switchyard" serve --config "$work/switchyard.yaml" --model-repository "$work/models" \
    --listen "127.0.0.1:$port" --rest-listen "" --admin-listen "127.0.0.1:$admin_port" --log-level notice >"$work/gateway.log" 2>&1 &
server=$!
loaders=()
cleanup() {
    for pid in "${loaders[@]}"; do kill "$pid" 2>/dev/null || true; done
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
kill -0 "$server" 2>/dev/null || { cat "$work/gateway.log" >&2; exit 2; }

if [ -z "$rate" ]; then
    # Capacity with the soak's own mix, shadow work included: both routes ramp together (3:1) over 20 s, open
    # loop; the capacity is the highest rate sustained with no failed request and p99 under 50 ms.
    for spec in digits:45000 ranker:15000; do
        "$bin/switchyard-load" --target "127.0.0.1:$port" --model "${spec%%:*}" --stages "20@100-${spec##*:}" \
            --connections 4 --threads 1 --timeout-ms 1000 --interval 1 --quiet \
            --output "$work/probe-${spec%%:*}.json" >/dev/null &
        loaders+=($!)
    done
    for pid in "${loaders[@]}"; do wait "$pid"; done
    loaders=()
    capacity=$(python3 loadtest/soak_analyze.py --capacity "$work/probe-digits.json" "$work/probe-ranker.json")
    rate=$(python3 -c "print(round(0.7 * $capacity))")
    echo "soak: capacity $capacity req/s (20 s open-loop ramp, no errors, p99 < 50 ms); soaking at $rate req/s (70 %)"
fi
# The first tenth of the run (at most 30 s) is warm-up: its requests are not counted (pools and caches start
# cold, a debug build most of all); the samples cover it, and the judge skips it as well.
warmup=$(python3 -c "print(min(30, max(1, round($seconds / 10))))")
digits_rate=$(python3 -c "print(max(1, round($rate * 0.75)))")
ranker_rate=$(python3 -c "print(max(1, round($rate * 0.25)))")
echo "soak: $seconds s at $digits_rate req/s (digits, shadowed) + $ranker_rate req/s (ranker, bandit), Poisson," \
     "sampling every $sample s; gateway pid $server; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

for spec in "digits:$digits_rate" "ranker:$ranker_rate"; do
    model=${spec%%:*} r=${spec##*:}
    "$bin/switchyard-load" --target "127.0.0.1:$port" --model "$model" --rate "$r" --arrival poisson \
        --duration "$seconds" --warmup "$warmup" --connections 4 --threads 1 --timeout-ms 1000 --interval "$sample" --quiet \
        --label "soak-$model" --output "$out-$model.json" >"$work/$model.summary" 2>&1 &
    loaders+=($!)
done

# Samples: seconds since the load started, RSS (KiB), open fds, threads, CPU seconds, sink files and bytes.
echo "t_s,rss_kib,fds,threads,cpu_s,sink_files,sink_bytes" >"$out.csv"
ticks=$(getconf CLK_TCK)
start=$(date +%s.%N)
while kill -0 "${loaders[0]}" 2>/dev/null || kill -0 "${loaders[1]}" 2>/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "soak: the gateway died" >&2; tail -20 "$work/gateway.log" >&2; exit 2; }
    now=$(date +%s.%N)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")
    threads=$(awk '/^Threads/ {print $2}' "/proc/$server/status")
    fds=$(ls "/proc/$server/fd" | wc -l)
    cpu=$(awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$server/stat")
    files=$(ls "$work/comparisons" 2>/dev/null | wc -l)
    bytes=$(du -sb "$work/comparisons" 2>/dev/null | cut -f1)
    printf '%.1f,%s,%s,%s,%s,%s,%s\n' "$(awk -v a="$now" -v b="$start" 'BEGIN {print a - b}')" "$rss" "$fds" "$threads" "$cpu" "$files" \
        "${bytes:-0}" >>"$out.csv"
    sleep "$sample"
done
status=0
for pid in "${loaders[@]}"; do wait "$pid" || status=2; done
loaders=()
[ $status -eq 0 ] || { cat "$work"/*.summary >&2; echo "soak: a load generator failed" >&2; exit 2; }
curl -s "http://127.0.0.1:$admin_port/metrics" >"$out.metrics" || true
kill -TERM "$server"
wait "$server" && drained=0 || drained=$?
[ "$drained" -eq 0 ] || { tail -20 "$work/gateway.log" >&2; echo "soak: the gateway exited $drained on SIGTERM" >&2; exit 2; }
grep -E "comparison sink stopped|shadow comparisons" "$work/gateway.log" | sed 's/^/gateway: /' || true

python3 loadtest/soak_analyze.py "$out.csv" "$out-digits.json" "$out-ranker.json" --metrics "$out.metrics" \
    --summary "$out.summary.json" --sink-limit $((5 * 4194304)) \
    --max-errors "$max_errors"
