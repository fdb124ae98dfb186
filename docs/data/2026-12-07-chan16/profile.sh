#!/usr/bin/env bash
# Step 1 profile: BatchNorm NCHW training forward / backward, f32 bf16 f16, 1 and 2 threads, DRAM shape.
# Run as: flock -x /work/notes/machine.lock bash profile.sh
BIN=${BIN:-/tmp/nb-base-chan16}
OUT=${OUT:-/work/wt-chan16/docs/data/2026-12-07-chan16/prof}
mkdir -p $OUT
echo "start $(uptime)" >> $OUT/log.txt
for t in 1 2; do
 for d in f32 bf16 f16; do
  for dir in forward-training backward; do
   perf record -F 1999 -o /tmp/chan16-perf.data -- $BIN sweep --threads $t --budget-ms 1500 --dtype $d --directions $dir \
     --layouts nchw --ops batchnorm --shapes 128x64x56x56 --csv $OUT/bn-$d-$dir-t$t.csv > /dev/null 2>>$OUT/err.txt
   perf report -i /tmp/chan16-perf.data --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25 > $OUT/bn-$d-$dir-t$t.txt
  done
 done
done
echo "end $(uptime)" >> $OUT/log.txt
