#!/bin/bash
# A/B of prefetcht1 (new) against prefetcht0 (base) along BatchNorm NCHW channel runs, Float32.
# Usage: BASE=<normbench> NEW=<normbench> measure.sh OUT ROUNDS   (run under flock -x)
set -e
OUT=$1; ROUNDS=${2:-6}; mkdir -p $OUT
lscpu | grep "Model name" > $OUT/machine-start.txt; uptime >> $OUT/machine-start.txt
args="sweep --ops batchnorm --layouts nchw --shapes 128x64x56x56,32x256x56x56 --directions forward-training,backward --threads 1,2 --budget-ms 400"
ctl="sweep --ops layernorm --shapes 8192x1024x1x1 --directions forward-training --threads 1,2 --budget-ms 300"
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for w in $order; do
    bin=$BASE; [ $w = new ] && bin=$NEW
    $bin $args --csv $OUT/$w-bn-r$r.csv > /dev/null 2>&1
    $bin $ctl --csv $OUT/$w-ln-r$r.csv > /dev/null 2>&1
  done
done
uptime > $OUT/machine-end.txt
