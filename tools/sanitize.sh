#!/usr/bin/env bash
# The whole test suite under a sanitizer, in its own build folder:
#   tools/sanitize.sh address     # ASan: out-of-bounds, use-after-free
#   tools/sanitize.sh thread      # TSan: data races (the concurrency tests share RunningStatistics
#                                 # and the worker pool between 16 callers)
# Release mode like tools/test.sh (-enable-testing for the internal helpers).
# Any report fails the run (halt_on_error). Extra arguments go to swift test,
# e.g. --filter HostileCall.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
kind="${1:?usage: tools/sanitize.sh address|thread [swift test arguments]}"
shift
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0"
export TSAN_OPTIONS="halt_on_error=1"
start=$(date +%s)
swift test -c release -Xswiftc -enable-testing --sanitize="$kind" --scratch-path ".build-$kind" "$@"
echo "== $kind sanitizer: passed in $(( $(date +%s) - start )) s"
