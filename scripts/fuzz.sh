#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Fuzz/ (release, -sanitize=fuzzer,address) and runs each on its committed
# seed corpus for SECONDS (default 20) per target. Inputs the fuzzer finds go to a scratch corpus
# (.build-fuzz/corpus/<target>), never into Fuzz/corpus; a crash, leak or timeout is written to
# .build-fuzz/artifacts/<target>/ and makes the script exit 1 after the other targets have run.
#
#   scripts/fuzz.sh                    20 s per target
#   scripts/fuzz.sh 3600               an hour per target
#   scripts/fuzz.sh 600 h2-connection  one target (grpc-deframer, infer-request, h2-connection, onnx-import)
#
#   SWITCHYARD_FUZZ_SEED=1 scripts/fuzz.sh 12   the same mutations every run (what scripts/test.sh does)
#
# Reproduce a crash: .build-fuzz/release/fuzz-<target> <artifact file>. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(grpc-deframer infer-request h2-connection onnx-import); fi
scratch="$PWD/${SWITCHYARD_FUZZ_SCRATCH:-.build-fuzz}"

# The sanitizer flags come from a toolset (Fuzz/toolset.json), which applies to the code being built and not to
# build-time tools: the @MemberwiseInit compiler plugin must not be linked with libFuzzer's main.
flags=(-c release --package-path Fuzz --scratch-path "$scratch" --toolset "$PWD/Fuzz/toolset.json")
echo "== fuzz: build (Fuzz/, -sanitize=fuzzer,address)"
started=$(date +%s)
# ld.gold warns that it cannot export ASan's local __asan_extra_spill_area; the symbol is not needed.
swift build "${flags[@]}" 2>&1 | grep -v "__asan_extra_spill_area" || true
swift build "${flags[@]}" >/dev/null 2>&1 || { echo "fuzz: build failed"; exit 1; }
bin=$(swift build "${flags[@]}" --show-bin-path)
echo "fuzz: build took $(($(date +%s) - started)) s"

seed=()
if [ -n "${SWITCHYARD_FUZZ_SEED:-}" ]; then seed=(-seed="$SWITCHYARD_FUZZ_SEED"); fi
failed=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    artifacts="$scratch/artifacts/$target"
    log="$scratch/logs/$target.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    echo "== fuzz: $target for ${seconds}s (log: $log)"
    status=0
    "$bin/fuzz-$target" \
        "${seed[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" "Fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    grep -E "DONE |stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $status); the input is in $artifacts/:"
        grep -E "ERROR: |Fatal error|SUMMARY|Test unit written" "$log" | head -8 || true
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failures in ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failures"
