#!/usr/bin/env bash
# Measures the gRPC front end's floor: switchyard-echo-server under h2load, reporting requests/s and the
# server's CPU time per request (utime+stime from /proc/PID/stat), median of 3 runs per client count.
#
#   Benchmarks/EchoServer/measure.sh [REQUESTS] [CLIENT_COUNTS] [LOOPS] [MESSAGE_BYTES]
#   e.g. Benchmarks/EchoServer/measure.sh 200000 "1 2 4" 1 32
#   TLS=1 Benchmarks/EchoServer/measure.sh    (TLS 1.3 with a throw-away self-signed certificate)
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${1:-200000}
CLIENTS=${2:-"1 2 4"}
LOOPS=${3:-1}
SIZE=${4:-32}
STREAMS=64
PORT=${PORT:-50151}
SCRATCH=${SCRATCH:-.build-http2}

swift build -c release --scratch-path "$SCRATCH" --product switchyard-echo-server >/dev/null
BIN="$SCRATCH/release/switchyard-echo-server"
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# A gRPC request body: 5-byte prefix (uncompressed, big-endian length) + SIZE message bytes.
python3 -c "import sys; n=$SIZE; sys.stdout.buffer.write(b'\x00' + n.to_bytes(4, 'big') + bytes(i % 251 for i in range(n)))" \
    >"$WORK/request.bin"

SCHEME=http
TLS_ARGS=()
if [ "${TLS:-0}" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/key.pem" \
        -out "$WORK/cert.pem" -days 1 -subj /CN=localhost 2>/dev/null
    SCHEME=https
    TLS_ARGS=(--tls "$WORK/cert.pem" "$WORK/key.pem")
fi

"$BIN" --listen "127.0.0.1:$PORT" --loops "$LOOPS" "${TLS_ARGS[@]}" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do grep -q listening "$WORK/server.log" && break; sleep 0.1; done
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

echo "switchyard-echo-server: $SCHEME loops=$LOOPS message=${SIZE}B requests=$REQUESTS streams/conn=$STREAMS (h2load)"
printf "%-8s %14s %22s\n" clients "requests/s" "server CPU us/request"
for C in $CLIENTS; do
    RATES=()
    CPUS=()
    for RUN in 1 2 3; do
        BEFORE=$(cpu_ticks)
        OUT=$(h2load -n "$REQUESTS" -c "$C" -m "$STREAMS" -d "$WORK/request.bin" \
            -H 'content-type: application/grpc' -H 'te: trailers' \
            "$SCHEME://127.0.0.1:$PORT/echo.Echo/Echo" 2>&1)
        AFTER=$(cpu_ticks)
        if ! grep -q "$REQUESTS succeeded" <<<"$OUT"; then
            echo "h2load run failed:" >&2
            echo "$OUT" >&2
            exit 1
        fi
        RATES+=("$(awk '/finished in/ {print $4}' <<<"$OUT")")
        CPUS+=("$(awk -v t=$((AFTER - BEFORE)) -v hz="$TICKS" -v n="$REQUESTS" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')")
    done
    RATE=$(printf "%s\n" "${RATES[@]}" | sort -g | sed -n 2p)
    CPU=$(printf "%s\n" "${CPUS[@]}" | sort -g | sed -n 2p)
    printf "%-8s %14s %22s\n" "$C" "$RATE" "$CPU"
done
