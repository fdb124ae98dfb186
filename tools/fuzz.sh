#!/usr/bin/env bash
# A long fuzzer run over the public API (Tests/NormKernelsTests/Fuzzer*.swift):
# batches of seeded random calls, a new seed per batch, until SECONDS have passed
# or a batch fails, in each of FuzzTests' five streams (Float32 core ops, fused
# ops, 16-bit entry points, array conveniences, Span overloads; they run side by
# side). CI runs one batch per stream (20 000 + 4 000 + 3 000 + 2 000 + 1 000
# calls); this is the long run.
#   tools/fuzz.sh [SECONDS=1800] [FIRST_SEED=1]
# Every failure prints its seed, stream and call index; NORMKERNELS_FUZZ_SEED=<seed>
# with NORMKERNELS_FUZZ_CALLS past the index (scaled by the stream's share,
# docs/TESTING.md) reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
SECONDS_TO_RUN="${1:-1800}"
NORMKERNELS_FUZZ_SECONDS="$SECONDS_TO_RUN" NORMKERNELS_FUZZ_SEED="${2:-1}" NORMKERNELS_FUZZ_CALLS=20000 \
    swift test -c release -Xswiftc -enable-testing --filter FuzzTests
