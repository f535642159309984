#!/usr/bin/env bash
# The engine comparison with its dependencies: installs Debian's libopenblas (the BLAS anchor) when missing,
# builds switchyard-engine-bench, and runs compare.py with OpenBLAS' core-type overrides unset (they halve
# OpenBLAS on this machine; never unset them in tests or CI).
#   Benchmarks/Engine/compare.sh [compare.py flags…]     e.g. --layers --bf16 --runs 5 --rounds 3
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 ] && ! ldconfig -p | grep -q libopenblas; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q libopenblas-dev >/dev/null
fi
bash scripts/bootstrap.sh --test >/dev/null
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
swift build -c release --scratch-path .build-bench --product switchyard-engine-bench >/dev/null
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" Benchmarks/Engine/compare.py \
    --bench .build-bench/release/switchyard-engine-bench "$@"
