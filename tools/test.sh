#!/usr/bin/env bash
# The test command (README, .ci/run): installs libhwloc-dev if missing, then runs
# the whole suite in release mode (the kernels' SIMD loops are ~50x slower in
# debug builds; -enable-testing lets tests reach internal helpers).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
exec swift test -c release -Xswiftc -enable-testing "$@"
