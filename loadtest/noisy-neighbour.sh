#!/usr/bin/env bash
# Fair sharing between tenants in a pool: two tenants of equal weight on one model, the polite one sending
# POLITE_FRACTION of the pool's capacity (within its half), the noisy one NOISY_MULTIPLE times its share (its share is
# half the capacity). Goal (#19): the polite tenant's p99 within 1.2x of its uncontended p99, measured in the same
# round, and none of its calls shed; the noisy tenant shed down to about its share (it keeps what the polite one
# leaves: the pool is work-conserving).
# Model: the 784->1024->1024->10 MLP (loadtest/peers/make_mlp.py), one worker, max_batch_size 16, slo_ms 20, so that
# the pool, not the front end, is what the tenants compete for. Each round starts fresh gateways and runs
#   capacity   (first round only) the noisy tenant alone, closed loop at 64 in flight: okThroughput C;
#   alone      the polite tenant alone, Poisson at POLITE_FRACTION x C;
#   contended  the polite tenant as above and the noisy one at NOISY_MULTIPLE x C/2, both Poisson, at once;
#   untenanted the same contended load with no `tenants:` section (one queue, deadline order), for comparison.
# Open loop, 200 ms deadline, latency from the intended send time, one switchyard-load process per tenant.
#   loadtest/noisy-neighbour.sh [SECONDS=10] [ROUNDS=3] [POLITE_FRACTION=0.4] [NOISY_MULTIPLE=10]
# Binaries: SWITCHYARD_BIN and SWITCHYARD_LOAD_BIN, else the release build (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
POLITE_FRACTION=${3:-0.4}
NOISY_MULTIPLE=${4:-10}
python="$venv/bin/python"
[ -x "$python" ] || { echo "the test environment is missing ($venv): scripts/bootstrap.sh"; exit 1; }
gateway_and_load_bins
make_work

mkdir -p "$work/repo/mlp/1"
"$python" loadtest/peers/make_mlp.py "$work/repo/mlp/1/model.onnx" >/dev/null
printf 'max_batch_size: 16\nworkers: 1\nslo_ms: 20\nmax_queue_size: 4096\n' >"$work/repo/mlp/config.yaml"
cat >"$work/tenants.yaml" <<YAML
model_repository: $work/repo
tenants:
  header: x-tenant-id
  limits:
    polite: {weight: 1}
    noisy: {weight: 1}
YAML
printf 'model_repository: %s\n' "$work/repo" >"$work/untenanted.yaml"

gateway() {  # gateway CONFIG → starts a gateway; sets $gw_pid, $gw_port, $gw_admin
    gw_port=$(port)
    gw_admin=$(port)
    "$bin" serve --config "$1" --listen "127.0.0.1:$gw_port" --admin-listen "127.0.0.1:$gw_admin" --rest-listen "" \
        --log-level warning >>"$work/gateway.log" 2>&1 &
    gw_pid=$!
    wait_port "$gw_port"
}
stop_gateway() { kill -TERM "$gw_pid"; wait "$gw_pid" || true; }

# run TENANT OUT ARGS… : one switchyard-load run as TENANT (2 s warm-up), its JSON in OUT
run() {
    local tenant=$1 out=$2; shift 2
    "$load" --target "127.0.0.1:$gw_port" --model mlp --input random --header "x-tenant-id:$tenant" --warmup 2 \
        --duration "$SECONDS_PER_RUN" --timeout-ms 200 --connections 2 --streams 128 --quiet --output "$out" "$@" \
        >/dev/null
}

# summary JSON → "ok_per_s p99_ms errors"
summary() {
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]
print("%.0f %.2f %d" % (s["okThroughput"], s["latencyMs"]["p99"], s["errors"]))' "$1"
}

host_line
gateway "$work/tenants.yaml"
run noisy "$work/capacity.json" --concurrency 64
stop_gateway
capacity=$(summary "$work/capacity.json" | awk '{print $1}')
polite_rate=$(python3 -c "print(round($capacity * $POLITE_FRACTION))")
noisy_rate=$(python3 -c "print(round($capacity / 2 * $NOISY_MULTIPLE))")
echo "capacity (noisy alone, closed loop): $capacity calls/s; polite at $polite_rate/s, noisy at $noisy_rate/s" \
    "(share $(python3 -c "print(round($capacity / 2))")/s)"

rows=()
for round in $(seq "$ROUNDS"); do
    gateway "$work/tenants.yaml"
    run polite "$work/alone.json" --rate "$polite_rate" --arrival poisson
    run noisy "$work/noisy.json" --rate "$noisy_rate" --arrival poisson --seed 2 &
    noisy_pid=$!
    run polite "$work/polite.json" --rate "$polite_rate" --arrival poisson
    wait "$noisy_pid"
    stop_gateway
    gateway "$work/untenanted.yaml"
    run noisy "$work/u-noisy.json" --rate "$noisy_rate" --arrival poisson --seed 2 &
    noisy_pid=$!
    run polite "$work/u-polite.json" --rate "$polite_rate" --arrival poisson
    wait "$noisy_pid"
    stop_gateway
    line="$(summary "$work/alone.json") $(summary "$work/polite.json") $(summary "$work/noisy.json")"
    line+=" $(summary "$work/u-polite.json") $(summary "$work/u-noisy.json")"
    read -r _ alone_p99 _ _ polite_p99 polite_err noisy_ok _ noisy_err _ u_p99 u_err u_noisy_ok _ _ <<<"$line"
    echo "round $round: polite alone p99 $alone_p99 ms; contended: polite p99 $polite_p99 ms" \
        "($(python3 -c "print(f'{$polite_p99 / $alone_p99:.2f}')")x), polite shed/failed $polite_err," \
        "noisy answered $noisy_ok/s (failed $noisy_err); without tenants: polite p99 $u_p99 ms, polite failed $u_err," \
        "noisy answered $u_noisy_ok/s"
    for side in polite noisy u-polite; do
        python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]
print("  %s by status: %s" % (sys.argv[2], s["byStatus"]))' "$work/$side.json" "$side"
    done
    rows+=("$line")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
ratio = statistics.median(r[4] / r[1] for r in rows)
print(f"medians of {len(rows)} rounds: polite alone p99 {med(1):.2f} ms; contended polite p99 {med(4):.2f} ms, "
      f"ratio {ratio:.2f} (goal <= 1.2), polite failed {med(5):.0f} (goal 0), noisy answered {med(6):.0f}/s "
      f"(failed {med(8):.0f}); without tenants: polite p99 {med(10):.2f} ms, polite failed {med(11):.0f}, "
      f"noisy answered {med(12):.0f}/s")
'
