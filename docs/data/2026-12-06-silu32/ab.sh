#!/bin/bash
# usage: ab.sh OUTDIR ROUNDS  (base: /tmp/nb-base-silu32 = main f85e6bc, new: /tmp/nb-new-silu32)
# GroupNorm + SiLU forward, f32 and bf16 (f32: the same code in both; the
# control), alternating rounds base/new.
OUT=$1; R=${2:-4}; mkdir -p $OUT
ARGS="sweep --threads 1,2 --budget-ms 300 --directions forward-training --dtype f32,bf16 --groups 32 --ops groupnorm-silu --layouts nchw,nhwc --shapes 2x320x64x64,2x1280x16x16"
echo "$ARGS" > $OUT/command.txt
lscpu | grep "Model name" > $OUT/machine.txt
for r in $(seq 1 $R); do
  for v in base new; do
    echo "round $r $v $(date -u +%T) $(uptime)" >> $OUT/load.txt
    /tmp/nb-$v-silu32 $ARGS --csv $OUT/$v-$r.csv > $OUT/$v-$r.log 2>&1
  done
done
echo "end $(date -u +%T) $(uptime)" >> $OUT/load.txt
