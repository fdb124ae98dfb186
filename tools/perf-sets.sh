#!/usr/bin/env bash
# Runs the issue-6 case sets (peer set and DRAM set) through normbench and writes
# one CSV per set under OUT (default out/). Usage: tools/perf-sets.sh [OUT] [THREADS]
# Build first: swift build -c release --package-path Harness --scratch-path .build-release -Xcc -march=x86-64-v3
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out}; THREADS=${2:-2}; BIN=${NORMBENCH:-.build-release/release/normbench}
mkdir -p "$OUT"
common=(--threads "$THREADS" --budget-ms "${BUDGET_MS:-300}" --directions forward-training,forward-inference,backward)
# With TORCH_PY set (a python with torch), each set also runs through
# tools/torch_compare.py right after normbench, so both sit in one run.
# SETS=peer-batchnorm,dram-layernorm runs only the named sets.
run() {
    local name=$1; shift
    if [ -n "${SETS:-}" ] && [[ ",$SETS," != *",$name,"* ]]; then return 0; fi
    "$BIN" sweep "${common[@]}" "$@" --csv "$OUT/$name.csv" --json "$OUT/$name.json"
    if [ -n "${TORCH_PY:-}" ]; then
        "$TORCH_PY" tools/torch_compare.py --threads "$THREADS" --budget-ms "${BUDGET_MS:-300}" \
            --directions forward-training,forward-inference,backward "$@" \
            --csv "$OUT/$name.torch.csv" --normbench-json "$OUT/$name.json" >&2
    fi
}
# Peer set: the shapes PyTorch, oneDNN and ONNX Runtime were measured on.
run peer-batchnorm    --ops batchnorm    --shapes 32x64x56x56,8x256x28x28,64x512x7x7,4096x1024x1x1
run peer-layernorm    --ops layernorm    --shapes 8192x1024x1x1,2048x4096x1x1,16384x768x1x1
run peer-groupnorm    --ops groupnorm    --groups 32 --shapes 32x64x56x56,2x320x64x64,2x1280x16x16
run peer-instancenorm --ops instancenorm --shapes 32x64x56x56,1x64x256x256
# DRAM set: every tensor at least 3x the last-level cache.
run dram-batchnorm    --ops batchnorm    --shapes 128x64x56x56 --paired-copy
# The probes that bound a kernel reading its input twice (BatchNorm NHWC), right
# after its set: tools/targets_median.py prints the two-pass ceiling from them.
if [ -z "${SETS:-}" ] || [[ ",$SETS," == *",dram-batchnorm,"* ]]; then
    "$BIN" bandwidth --threads "$THREADS" --kernels read,copy,nt-copy,nt-triad --csv "$OUT/bandwidth.csv"
fi
run dram-layernorm    --ops layernorm    --shapes 32768x1024x1x1 --paired-copy
run dram-groupnorm    --ops groupnorm    --groups 32 --shapes 64x128x56x56 --paired-copy
run dram-instancenorm --ops instancenorm --shapes 32x64x128x128 --paired-copy
