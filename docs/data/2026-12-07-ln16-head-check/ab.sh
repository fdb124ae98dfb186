#!/usr/bin/env bash
# BFloat16 LayerNorm forward after the merges: main's binary before ln16row (a69a4f6) vs main at 1a2e0a5,
# 6 alternating rounds; Float32 rows (unchanged code) as the control.
# Run as: flock -x /work/notes/machine.lock bash ab.sh
BASE=${BASE:-/tmp/nb-main}; NEW=${NEW:-/tmp/nb-head}; OUT=${OUT:-$(dirname "$0")}
lscpu | grep 'Model name' > $OUT/log.txt
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  echo "round $r $order $(uptime)" >> $OUT/log.txt
  for w in $order; do
    if [ $w = base ]; then BIN=$BASE; else BIN=$NEW; fi
    $BIN sweep --ops layernorm --dtype f32,bf16 --shapes 8192x1024x1x1,16384x768x1x1,2048x4096x1x1 \
      --directions forward-training --threads 1,2 --budget-ms 200 --csv $OUT/$w-r$r.csv > /dev/null 2>&1
  done
done
echo "end $(uptime)" >> $OUT/log.txt
