#!/usr/bin/env bash
# Runs every Switchyard test: formatting (swift format, ruff), a warnings-as-errors build, the Swift unit and integration
# tests, and the end-to-end tests with stock clients (grpcio, tritonclient, perf_analyzer) against the
# real gateway binary, a short run of the fuzz targets (scripts/fuzz.sh), and the deploy/ checks
# (scripts/check-deploy.sh). Installs missing system packages and the Python test environment first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
export PATH="$venv/bin:$PATH"

echo "== swift format lint"
swift format lint --strict -r Package.swift Sources Tests Benchmarks Fuzz/Package.swift Fuzz/Sources 2>&1 | tee /tmp/switchyard-format.log
if [ -s /tmp/switchyard-format.log ]; then echo "swift format: fix the findings above (swift format -i -r Sources Tests Benchmarks Fuzz/Sources)"; exit 1; fi

echo "== ruff (Python: tests, load tests, benchmarks, scripts; ruff.toml)"
ruff check .

echo "== build (warnings are errors)"
swift build --build-tests -Xswiftc -warnings-as-errors

echo "== swift test"
swift test --skip-build --skip SwitchyardLoadTests
# The load generator's tests check measured latencies against scripted server delays: they run alone so that
# the rest of the suite, running in parallel, cannot skew what they measure.
echo "== swift test: load generator"
swift test --skip-build --filter SwitchyardLoadTests

echo "== end-to-end tests with stock clients"
SWITCHYARD_BIN="$(swift build --show-bin-path)/switchyard" python -m pytest -q Tests/EndToEnd

# A short libFuzzer run of every fuzz target on its committed corpus (its own build in .build-fuzz). From a clean
# build directory on 2 cores: 4 min 22 s with the machine quiet, about 6–7 min with it busy. Long runs:
# scripts/fuzz.sh 3600 (docs/fuzzing.md). The seed is fixed so that this gate runs the same mutations on the same
# tree every time: it checks the corpus and a reproducible budget of mutations, while long runs explore.
echo "== fuzz: ${SWITCHYARD_FUZZ_SECONDS:-12} s per target, seed ${SWITCHYARD_FUZZ_SEED:-1}"
SWITCHYARD_FUZZ_SEED="${SWITCHYARD_FUZZ_SEED:-1}" bash scripts/fuzz.sh "${SWITCHYARD_FUZZ_SECONDS:-12}"

echo "== deploy/: manifests, dashboard and a live /metrics scrape"
SWITCHYARD_BIN="$(swift build --show-bin-path)/switchyard" bash scripts/check-deploy.sh
