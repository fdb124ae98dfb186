#!/bin/sh
# Alternating rounds base/new of GroupNorm + SiLU against plain GroupNorm
# (issue 21, branch silu512). BASE, NEW, OUT, ROUNDS (default 4), DTYPES (f32).
set -e
ROUNDS=${ROUNDS:-4}
mkdir -p "$OUT"
echo "$(lscpu | grep 'Model name')" > "$OUT/machine.txt"
for r in $(seq 1 $ROUNDS); do
  for which in base new; do
    if [ $which = base ]; then B=$BASE; else B=$NEW; fi
    echo "round $r $which $(date -u +%H:%M:%S) $(uptime)" >> "$OUT/load.txt"
    $B sweep --ops groupnorm,groupnorm-silu --groups 32 --shapes 2x320x64x64,2x1280x16x16 \
      --layouts nchw,nhwc --directions forward-training,backward --threads 1,2 --dtype ${DTYPES:-f32} \
      --budget-ms ${BUDGET_MS:-100} --csv "$OUT/$which-$r.csv" > "$OUT/$which-$r.log" 2>&1
  done
done
echo "end $(date -u +%H:%M:%S) $(uptime)" >> "$OUT/load.txt"
