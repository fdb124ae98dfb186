#!/bin/bash
# usage: ab.sh OUTDIR ROUNDS  (base: /tmp/nb-base-gnsilu16, new: /tmp/nb-new-gnsilu16)
OUT=$1; R=${2:-4}; mkdir -p $OUT
ARGS="sweep --threads 1,2 --budget-ms 200 --directions forward-training,backward --dtype f32,bf16,f16 --groups 32 --ops groupnorm,groupnorm-silu --layouts nchw,nhwc --shapes 2x320x64x64,2x1280x16x16"
echo "$ARGS" > $OUT/command.txt
for r in $(seq 1 $R); do
  for v in base new; do
    echo "round $r $v $(date -u +%T) $(uptime)" >> $OUT/load.txt
    /tmp/nb-$v-gnsilu16 $ARGS --csv $OUT/$v-$r.csv > $OUT/$v-$r.log 2>&1
  done
done
echo "end $(date -u +%T) $(uptime)" >> $OUT/load.txt
