# Helpers shared by the loadtest scripts, sourced after they `cd` to the repository root:
#   source loadtest/lib.sh
# venv: the test environment (SWITCHYARD_TEST_VENV, default ~/.cache/switchyard/test-venv);
# clock_ticks: the kernel's clock ticks per second, the unit of cpu_ticks.

venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
clock_ticks=$(getconf CLK_TCK)

# cpu_ticks PID: the process's CPU time so far (utime + stime, all its threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# port: a free loopback TCP port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: returns once something listens on the loopback PORT; fails after 10 s.
wait_port() {
    for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# h2load_cpu PID URL BODY WARMUP REQUESTS: WARMUP gRPC calls with the body file BODY to URL to warm the server up,
# then REQUESTS more, measured (h2load, one connection, 64 concurrent streams); prints "RPS CPU_US SUCCEEDED": the
# measured run's requests per second, the server process's CPU time per request in µs, and the calls that succeeded.
h2load_cpu() {
    local pid=$1 url=$2 body=$3 warmup=$4 requests=$5 before after out
    local headers=(-H 'content-type: application/grpc' -H 'te: trailers')
    h2load -n "$warmup" -c 1 -m 64 -d "$body" "${headers[@]}" "$url" >/dev/null
    before=$(cpu_ticks "$pid")
    out=$(h2load -n "$requests" -c 1 -m 64 -d "$body" "${headers[@]}" "$url")
    after=$(cpu_ticks "$pid")
    echo "$out" | awk -v t=$((after - before)) -v hz="$clock_ticks" -v n="$requests" '
        /^finished in/ {gsub(",", "", $4); rps = $4}
        /^requests:/ {ok = $8}
        END {printf "%s %.2f %s\n", rps, t / hz * 1e6 / n, ok}'
}

# host_line: the host's CPU model, CPU count and load average, printed with the figures.
host_line() {
    echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs," \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# release_bin: the folder holding the gateway binary: SWITCHYARD_BIN's folder when it is set (no build), else a
# release build's.
release_bin() {
    if [[ -n "${SWITCHYARD_BIN:-}" ]]; then
        dirname "$SWITCHYARD_BIN"
    else
        swift build -c release --product switchyard >/dev/null
        swift build -c release --show-bin-path
    fi
}

# gateway_and_load_bins: sets `bin` and `load` to the gateway and load generator binaries: SWITCHYARD_BIN and
# SWITCHYARD_LOAD_BIN when both are set, else a release build's (built when either is missing).
gateway_and_load_bins() {
    local release=""
    if [[ -z "${SWITCHYARD_BIN:-}" || -z "${SWITCHYARD_LOAD_BIN:-}" ]]; then
        release=$(swift build -c release --show-bin-path)
        if [[ ! -x "$release/switchyard" || ! -x "$release/switchyard-load" ]]; then
            swift build -c release --product switchyard >/dev/null
            swift build -c release --product switchyard-load >/dev/null
        fi
    fi
    bin=${SWITCHYARD_BIN:-$release/switchyard}
    load=${SWITCHYARD_LOAD_BIN:-$release/switchyard-load}
}

# make_work: a scratch folder in $work; on exit the script's background jobs are killed and the folder removed.
make_work() {
    work=$(mktemp -d)
    trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
}
