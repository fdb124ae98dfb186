#!/usr/bin/env bash
# normbench syncbn (docs/SYNCBN.md, "Cost of a step"): builds normbench with the
# trait MPI and runs it under mpirun with 1, 2 and 4 ranks; each run prints a
# markdown table (machine, caches, commit, load average in its header) and
# writes CSV and markdown to $SYNCBN_OUT (default out/syncbn/, ignored by git).
#
# Installs Open MPI and hwloc (Debian) when missing. Environment: SYNCBN_RANKS
# ("1 2 4"), SYNCBN_OUT, MPI_TIMEOUT (seconds per run, 1800). Extra arguments go
# to `normbench syncbn` (e.g. --channels 64,2048 --layouts matrix --repetitions 100).
# For quiet figures run one rank per core on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
if ! pkg-config --exists ompi-c 2>/dev/null || ! command -v mpirun >/dev/null; then
    echo "installing libopenmpi-dev openmpi-bin ..." >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin pkg-config >/dev/null
fi
FLAGS=()
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    FLAGS=(-Xcc -march=x86-64-v3)
fi
scratch=.build-syncbn-bench
swift build -c release --package-path Harness --traits MPI --scratch-path "$scratch" "${FLAGS[@]}" >&2
out=${SYNCBN_OUT:-out/syncbn}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for np in ${SYNCBN_RANKS:-1 2 4}; do
    echo "== mpirun -np $np normbench syncbn (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    timeout --kill-after=10 "${MPI_TIMEOUT:-1800}" mpirun --oversubscribe -np "$np" \
        "$scratch/release/normbench" syncbn --csv "$out/syncbn-np$np.csv" --markdown "$out/syncbn-np$np.md" "$@"
done
