#!/bin/bash
# BFloat16 LayerNorm [16384,768] backward alone in its process (first and only case): main, this branch with the
# C sweep, and with NORMKERNELS_ROW_SUMS16=never, 4 rotated rounds, 1 and 2 threads.
set -e
OUT=${1:?outdir}; mkdir -p "$OUT"
{ date -u; uptime; } > "$OUT/machine-start.txt"
A="sweep --ops layernorm --dtype bf16 --shapes 16384x768x1x1 --directions backward --threads 1,2 --budget-ms 150"
for r in 1 2 3 4; do
  /tmp/nb-base-ln16c $A --csv $OUT/base-r$r.csv > /dev/null
  /tmp/nb-new3-ln16c $A --csv $OUT/v1-r$r.csv > /dev/null
  NORMKERNELS_ROW_SUMS16=never /tmp/nb-new3-ln16c $A --csv $OUT/v2-r$r.csv > /dev/null
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
