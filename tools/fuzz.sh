#!/usr/bin/env bash
# A long fuzzer run over the public API (Tests/NormKernelsTests/Fuzzer.swift):
# batches of seeded random calls, a new seed per batch, until SECONDS have passed
# or a batch fails. CI runs one batch of 20 000 calls; this is the long run.
#   tools/fuzz.sh [SECONDS=1800] [FIRST_SEED=1]
# Every failure prints its seed and call index; NORMKERNELS_FUZZ_SEED=<seed>
# NORMKERNELS_FUZZ_CALLS=<index + 1> reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
SECONDS_TO_RUN="${1:-1800}"
NORMKERNELS_FUZZ_SECONDS="$SECONDS_TO_RUN" NORMKERNELS_FUZZ_SEED="${2:-1}" NORMKERNELS_FUZZ_CALLS=20000 \
    swift test -c release -Xswiftc -enable-testing --filter FuzzTests
