#!/usr/bin/env bash
# Installs what Switchyard needs on a fresh Debian/Ubuntu machine, skipping what is already there.
#   scripts/bootstrap.sh          system libraries to build and run the gateway
#   scripts/bootstrap.sh --test   plus the test tools: h2load/nghttp, openssl, etcd (fleet-mode tests start their own
#                                 on free loopback ports), and a Python environment with
#                                 grpcio, tritonclient, perf_analyzer, onnx, onnxruntime, scikit-learn, skl2onnx,
#                                 and the deploy/ checkers (yamllint, kubernetes-validate with its bundled schemas,
#                                 promtool for the alert rules)
# The Swift toolchain (6.1 or later) must already be on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

packages=(pkg-config libnghttp2-dev libprotobuf-c-dev libssl-dev zlib1g-dev libhttp-parser-dev libjansson-dev libsimdjson-dev)
if [ $want_test = 1 ]; then
    packages+=(nghttp2-client openssl etcd-server python3 python3-venv python3-pip)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool (Debian's prometheus package, without its recommended exporters) runs the alert rules' unit tests in
# scripts/check-deploy.sh; the package's service is not started by the checks.
if [ $want_test = 1 ] && ! command -v promtool >/dev/null; then
    echo "bootstrap: installing prometheus (for promtool)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! command -v swift >/dev/null; then
    echo "bootstrap: the Swift toolchain (6.1 or later) is not on PATH; install it from swift.org first" >&2
    exit 1
fi

if [ $want_test = 1 ]; then
    venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
    if ! "$venv/bin/python" -c 'import tritonclient.grpc' 2>/dev/null || [ ! -x "$venv/bin/perf_analyzer" ] \
        || ! grep -q cudart "$venv/bin/perf_analyzer"; then
        echo "bootstrap: preparing the test environment in $venv"
        mkdir -p "$(dirname "$venv")"
        bash scripts/install-triton-clients.sh "$venv" "$venv-sysroot"
    fi
    # The pinned packages (clients, exporters, checkers, the Python linter): installed again whenever the pins change.
    stamp="$venv/.switchyard-requirements.txt"
    if ! cmp -s Tests/EndToEnd/requirements.txt "$stamp"; then
        echo "bootstrap: installing the pinned test packages (Tests/EndToEnd/requirements.txt) into $venv"
        "$venv/bin/pip" install -q -r Tests/EndToEnd/requirements.txt
        cp Tests/EndToEnd/requirements.txt "$stamp"
    fi
fi
