#!/bin/bash
# main vs ln16c with every large buffer mmapped (page-aligned), 6 alternating rounds.
# Run: flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/layout/ab-mmap.sh OUTDIR
OUT=${1:-docs/data/2026-12-07-ln16c/layout/ab-mmap}
{ date -u; uptime; lscpu | grep "Model name"; } > /tmp/ln16h-machine-start.txt
python3 /work/main/tools/ab.py --base /tmp/nb-main-head --new /tmp/nb-new3-ln16c \
  --base-env MALLOC_MMAP_THRESHOLD_=131072 --new-env MALLOC_MMAP_THRESHOLD_=131072 \
  --case "--ops layernorm,rmsnorm --dtype f32,bf16,f16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --threads 1" \
  --case "--ops layernorm,rmsnorm --dtype bf16,f16 --directions backward --shapes 16384x768x1x1 --threads 2" \
  --rounds 6 --budget-ms 100 --out $OUT
{ cat /tmp/ln16h-machine-start.txt; date -u; uptime; } > $OUT/machine.txt
