#!/bin/bash
# main vs the experiment binary with groups of 2 rows (NK_RS_EXP_RMAX=2), on mmap and on heap placement, 6 rounds each.
# Run: flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/layout/ab-pairs.sh
D=docs/data/2026-12-07-ln16c/layout
for p in mmap:131072 heap:33554432; do
  OUT=$D/ab-pairs-${p%%:*}; mkdir -p $OUT
  { date -u; uptime; } > /tmp/ln16h-ms.txt
  python3 /work/main/tools/ab.py --base /tmp/nb-main-head --new /tmp/nb-exp2-ln16h \
    --base-env MALLOC_MMAP_THRESHOLD_=${p#*:} --new-env MALLOC_MMAP_THRESHOLD_=${p#*:} --new-env NK_RS_EXP_RMAX=2 \
    --case "--ops layernorm,rmsnorm --dtype f32,bf16,f16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --threads 1" \
    --rounds 6 --budget-ms 100 --out $OUT > /dev/null
  { cat /tmp/ln16h-ms.txt; date -u; uptime; } > $OUT/machine.txt
done
