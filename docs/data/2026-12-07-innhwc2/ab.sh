#!/bin/bash
# A/B of main's binary (base) against this branch (new), alternating rounds, same minutes.
# Affected: GroupNorm NHWC with N = 2 at 2 threads (whole matrices per worker);
# unchanged controls: GroupNorm NHWC [32,64,56,56] (N = 32: whole matrices before and after),
# BatchNorm NCHW [8,256,28,28] forward-training (another engine).
# usage: ab.sh OUTDIR FIRST LAST   (run under flock -x /work/notes/machine.lock)
BASE=/tmp/nb-base-innhwc; NEW=/tmp/nb-new-innhwc; OUT=$1; mkdir -p $OUT
run() { # binary tag round
  $1 sweep --ops groupnorm --layouts nhwc --directions forward-training,backward --groups 32 \
     --shapes 2x320x64x64,2x1280x16x16,32x64x56x56 --threads 1,2 --budget-ms 200 --csv $OUT/r$3-$2-gn.csv > /dev/null 2>&1
  $1 sweep --ops batchnorm --layouts nchw --directions forward-training --shapes 8x256x28x28 --threads 1,2 \
     --budget-ms 200 --csv $OUT/r$3-$2-control.csv > /dev/null 2>&1
}
echo "start $(date -u +%T) $(uptime)"
for r in $(seq $2 $3); do
  if [ $((r % 2)) = 1 ]; then run $BASE base $r; run $NEW new $r; else run $NEW new $r; run $BASE base $r; fi
done
echo "end $(date -u +%T) $(uptime)"
