#!/usr/bin/env bash
# The test command (README, .ci/run): installs libhwloc-dev if missing, then runs
# the whole suite in release mode (the kernels' SIMD loops are ~50x slower in
# debug builds; -enable-testing lets tests reach internal helpers).
#
# First the documentation (tools/docs.sh: DocC, warnings are errors). Then two
# builds, because the library compiles differently for each:
# 1. the default target (what a consumer gets without flags: SSE2, no FMA), run
#    as built and again with NORMKERNELS_STREAMING=always;
# 2. where the CPU has AVX2 and FMA, the build the benchmarks use
#    (-Xcc -march=x86-64-v3: fused multiply-adds in every kernel loop), run with
#    NORMKERNELS_STREAMING=always so the non-temporal output paths, which the
#    tests' small tensors would otherwise never take, are checked too.
# Last, tools/mpi-test.sh: synchronized BatchNorm under mpirun (docs/SYNCBN.md).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
# The DocC catalog and every public doc comment; a broken link fails here.
tools/docs.sh
swift test -c release -Xswiftc -enable-testing "$@"
# The same binary with every output path streaming (non-temporal stores), which
# the tests' small tensors would otherwise never reach on a machine with a large L3.
echo "== default build again, NORMKERNELS_STREAMING=always"
NORMKERNELS_STREAMING=always swift test -c release -Xswiftc -enable-testing --skip-build "$@"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    echo "== again with -Xcc -march=x86-64-v3 (AVX2 + FMA) and streaming stores"
    NORMKERNELS_STREAMING=always swift test -c release -Xswiftc -enable-testing \
        -Xcc -march=x86-64-v3 --scratch-path .build-avx2 "$@"
fi
# Synchronized BatchNorm across processes: Open MPI, mpirun -np 1, 2 and 4 against
# single-process BatchNorm (installs Open MPI when missing; each run has a timeout).
echo "== synchronized BatchNorm over MPI (tools/mpi-test.sh)"
tools/mpi-test.sh
