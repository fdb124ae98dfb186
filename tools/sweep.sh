#!/usr/bin/env bash
# The main job (README): installs libhwloc-dev if missing, builds normbench with
# AVX2+FMA code generation when the CPU has it (flags on the command line, never
# in Package.swift), and runs the default sweep. Extra arguments go to `normbench sweep`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
FLAGS=()
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    FLAGS=(-Xcc -march=x86-64-v3)
fi
swift build -c release --package-path Harness --scratch-path .build-release "${FLAGS[@]}" >&2
exec .build-release/release/normbench sweep "$@"
