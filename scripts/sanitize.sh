#!/usr/bin/env bash
# Runs the Swift test suite under a sanitizer and reports what it found.
#
#   scripts/sanitize.sh asan     AddressSanitizer (+ LeakSanitizer), scratch path .build-asan, scripts/lsan.supp
#   scripts/sanitize.sh tsan     ThreadSanitizer, scratch path .build-tsan, suppressions in scripts/tsan.supp
#   scripts/sanitize.sh tsan --filter SwitchyardHTTP2Tests     extra arguments go to `swift test`
#
# SwitchyardLoadTests are left out: they compare measured latencies with scripted server delays, and a
# sanitizer's 2–20× slowdown makes those comparisons meaningless (see docs/fuzzing.md). Exits non-zero when a
# test fails or the sanitizer reports anything.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
case "$kind" in
    asan)
        sanitizer=address
        scratch=.build-asan
        # Leaks are checked too (LeakSanitizer runs at exit on Linux); scripts/lsan.supp says what is suppressed.
        export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_summary=1}"
        export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}"
        ;;
    tsan)
        sanitizer=thread
        scratch=.build-tsan
        export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$PWD/scripts/tsan.supp:halt_on_error=0:history_size=4:print_suppressions=0}"
        ;;
    *)
        echo "usage: scripts/sanitize.sh asan|tsan [swift test arguments]" >&2
        exit 2
        ;;
esac
log="$scratch/sanitize-$kind.log"
mkdir -p "$scratch"

echo "== $kind: build (--sanitize=$sanitizer, scratch path $scratch)"
started=$(date +%s)
swift build --build-tests --scratch-path "$scratch" --sanitize="$sanitizer"
echo "$kind: build took $(($(date +%s) - started)) s"

echo "== $kind: swift test (log: $log)"
started=$(date +%s)
status=0
if [ $# -gt 0 ]; then
    swift test --skip-build --scratch-path "$scratch" --sanitize="$sanitizer" "$@" >"$log" 2>&1 || status=$?
else
    swift test --skip-build --scratch-path "$scratch" --sanitize="$sanitizer" --skip SwitchyardLoadTests \
        >"$log" 2>&1 || status=$?
fi
echo "$kind: tests took $(($(date +%s) - started)) s"
grep -E "Test run with|Executed [0-9]+ tests|✘" "$log" | tail -20 || true
reports=$(grep -cE "^(==[0-9]+==ERROR: |WARNING: ThreadSanitizer:|SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer)" "$log" || true)
echo "$kind: $reports sanitizer report line(s); swift test exit $status"
if [ "$reports" -gt 0 ]; then
    grep -E "^(==[0-9]+==ERROR: |WARNING: ThreadSanitizer:|SUMMARY: )" "$log" | sort | uniq -c | head -20
fi
if [ "$status" -ne 0 ] || [ "$reports" -gt 0 ]; then exit 1; fi
echo "$kind: clean"
