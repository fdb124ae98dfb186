#!/bin/bash
# main vs the final branch build (pairs), 6 alternating rounds, one placement per call:
#   flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/layout/ab-final.sh default|mmap|heap
D=docs/data/2026-12-07-ln16c/layout
P=$1; OUT=$D/ab-final-$P; mkdir -p $OUT
case $P in default) E=X=1;; mmap) E=MALLOC_MMAP_THRESHOLD_=131072;; heap) E=MALLOC_MMAP_THRESHOLD_=33554432;; esac
{ date -u; uptime; lscpu | grep "Model name"; } > /tmp/ln16h-ms.txt
python3 /work/main/tools/ab.py --base /tmp/nb-main-head --new /tmp/nb-new4-ln16h --base-env $E --new-env $E \
  --case "--ops layernorm,rmsnorm --dtype f32,bf16,f16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --threads 1" \
  --case "--ops layernorm,rmsnorm --dtype bf16,f16 --directions backward --shapes 16384x768x1x1 --threads 2" \
  --rounds 6 --budget-ms 100 --out $OUT > /dev/null
{ cat /tmp/ln16h-ms.txt; date -u; uptime; } > $OUT/machine.txt
