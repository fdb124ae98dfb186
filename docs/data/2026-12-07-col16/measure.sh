#!/usr/bin/env bash
# 16-bit NHWC backward (the DRAM set's backward NHWC lines, docs/data/2026-12-06-dram16/dram-main.sh):
# base (main a69a4f6 = 9ed5597's code) vs new (branch col16), alternating which binary goes first,
# f32 (unchanged: the control) / bf16 / f16, 2 threads and 1, rounds FIRST..LAST.
# Run as: flock -x /work/notes/machine.lock bash measure.sh   (FIRST=1 LAST=3, then FIRST=4 LAST=6)
BASE=${BASE:-/tmp/nb-base-col16}
NEW=${NEW:-/tmp/nb-new-col16}
OUT=${OUT:-/work/wt-col16/docs/data/2026-12-07-col16/raw}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq ${FIRST:-1} ${LAST:-3}); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  echo "round $r order $order $(uptime)" >> $OUT/log.txt
  for which in $order; do
    if [ $which = base ]; then BIN=$BASE; else BIN=$NEW; fi
    for t in ${THREADS:-2 1}; do
      $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions backward --layouts nhwc \
        --ops batchnorm --shapes 128x64x56x56 --csv $OUT/$which-bn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions backward --layouts nhwc \
        --ops groupnorm --groups 32 --shapes 64x128x56x56 --csv $OUT/$which-gn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions backward --layouts nhwc \
        --ops instancenorm --shapes 32x64x128x128 --csv $OUT/$which-in-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
    done
  done
done
echo "end $(uptime)" >> $OUT/log.txt
