#!/usr/bin/env bash
# Synchronized BatchNorm across processes over Open MPI (docs/SYNCBN.md): builds
# syncbn-mpi-check with the package trait MPI and runs it under mpirun with 1, 2
# and 4 ranks. Every rank compares its slice with single-process BatchNorm on
# the whole batch, checks that all ranks hold the same statistics and that
# errors are collective; any failure makes mpirun (and this script) fail.
# Each run is bounded by a timeout, so a hang fails instead of stalling CI.
#
# Installs Open MPI (Debian: libopenmpi-dev openmpi-bin) when it is missing.
# Environment: MPI_RANKS ("1 2 4"), MPI_TIMEOUT (seconds per run, 300),
# MPI_SCRATCH (build folder, .build-mpi). Extra arguments go to swift build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pkg-config --exists ompi-c 2>/dev/null || ! command -v mpirun >/dev/null; then
    echo "installing libopenmpi-dev openmpi-bin ..." >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin pkg-config >/dev/null
fi
scratch=${MPI_SCRATCH:-.build-mpi}
swift build -c release --traits MPI --product syncbn-mpi-check --scratch-path "$scratch" "$@"
bin="$scratch/release/syncbn-mpi-check"
# As root Open MPI refuses to start without both variables; --oversubscribe
# allows more ranks than cores (4 ranks on a 2-core machine).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for np in ${MPI_RANKS:-1 2 4}; do
    echo "== mpirun -np $np syncbn-mpi-check"
    timeout --kill-after=10 "${MPI_TIMEOUT:-300}" mpirun --oversubscribe -np "$np" "$bin"
done
