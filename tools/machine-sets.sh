#!/usr/bin/env bash
# The DRAM set (Float32, 1 and 2 threads, paired copy bandwidth) and the fused
# set (fused against plain and unfused, Float32 and BFloat16, 1 and 2 threads,
# two rounds) on the machine at hand: what a new machine kind gets measured
# with besides tools/peers.py. Usage:
#   NB=<normbench> DRAM=<folder> FUSED=<folder> tools/machine-sets.sh
# Either folder may be left out to skip that set. Summaries:
#   python3 docs/data/2026-12-06-fused-zen4-f169aaa/summarize.py $FUSED
# and the DRAM summary's table as in docs/data/2026-12-07-dram-zen3-620924f.
set -uo pipefail
cd "$(dirname "$0")/.."
NB=${NB:-.build-release/release/normbench}
stamp() { echo "$1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
machine() {
    lscpu | grep -E 'Model name|CPU family|^Model:'
    grep -o -m1 avx512f /proc/cpuinfo || echo "no avx512f"
    "$NB" topology | head -4
    echo "commit $(git rev-parse --short HEAD)"
}
if [ -n "${DRAM:-}" ]; then
    mkdir -p "$DRAM"; machine > "$DRAM/machine.txt"; stamp start > "$DRAM/load.txt"
    for t in 1 2; do
        run() { local name=$1; shift
            "$NB" sweep --threads $t --budget-ms 300 --paired-copy "$@" \
                --csv "$DRAM/$name-t$t.csv" --json "$DRAM/$name-t$t.json" > "$DRAM/$name-t$t.log" 2>&1; }
        run batchnorm --directions forward-training,forward-inference,backward --ops batchnorm --shapes 128x64x56x56
        run rows --directions forward-training,backward --ops layernorm,rmsnorm --shapes 32768x1024x1x1
        run groupnorm --directions forward-training,backward --ops groupnorm --groups 32 --shapes 64x128x56x56
        run instancenorm --directions forward-training,forward-inference,backward --ops instancenorm --shapes 32x64x128x128
        stamp "dram t$t done" >> "$DRAM/load.txt"
    done
    "$NB" bandwidth --threads 2 --kernels read,copy,nt-copy,nt-triad --csv "$DRAM/bandwidth.csv" > "$DRAM/bandwidth.log" 2>&1
fi
if [ -n "${FUSED:-}" ]; then
    mkdir -p "$FUSED"; machine > "$FUSED/machine.txt"; stamp start > "$FUSED/load.txt"
    for r in 1 2; do
        run() { local name=$1; shift
            "$NB" sweep --threads 1,2 --budget-ms 200 --dtype f32,bf16 "$@" \
                --csv "$FUSED/$name-r$r.csv" > "$FUSED/$name-r$r.log" 2>&1; }
        run rows --directions forward-training,backward \
            --ops layernorm,layernorm-residual,layernorm-residual-unfused,rmsnorm,rmsnorm-residual,rmsnorm-residual-unfused,rmsnorm-gate,rmsnorm-gate-unfused \
            --shapes 8192x1024x1x1,2048x4096x1x1
        run groupnorm --directions forward-training,backward \
            --ops groupnorm,groupnorm-silu,groupnorm-then-silu --groups 32 --shapes 2x320x64x64,2x1280x16x16
        run batchnorm --directions forward-training,forward-inference,backward \
            --ops batchnorm,batchnorm-add-relu --shapes 32x64x56x56,8x256x28x28
        stamp "fused r$r done" >> "$FUSED/load.txt"
    done
    stamp end >> "$FUSED/load.txt"
fi
