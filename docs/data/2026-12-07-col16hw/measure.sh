#!/usr/bin/env bash
# BFloat16 NHWC backward (the DRAM set's backward NHWC shapes, as docs/data/2026-12-07-col16/measure.sh):
# base (branch col16: dx rounded by the integer formula in the AVX-512 column loop) vs new (col16hw:
# vcvtneps2bf16), alternating which binary goes first; Float32 (unchanged) is the control.
# Run as: flock -x /work/notes/machine.lock bash measure.sh
BASE=${BASE:-/tmp/nb-col16}
NEW=${NEW:-/tmp/nb-col16hw}
OUT=${OUT:-$(dirname "$0")/raw}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq ${FIRST:-1} ${LAST:-6}); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  echo "round $r order $order $(uptime)" >> $OUT/log.txt
  for which in $order; do
    if [ $which = base ]; then BIN=$BASE; else BIN=$NEW; fi
    for t in ${THREADS:-2 1}; do
      $BIN sweep --threads $t --budget-ms 250 --dtype f32,bf16 --directions backward --layouts nhwc \
        --ops batchnorm --shapes 128x64x56x56 --csv $OUT/$which-bn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      $BIN sweep --threads $t --budget-ms 250 --dtype f32,bf16 --directions backward --layouts nhwc \
        --ops groupnorm --groups 32 --shapes 64x128x56x56 --csv $OUT/$which-gn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      $BIN sweep --threads $t --budget-ms 250 --dtype f32,bf16 --directions backward --layouts nhwc \
        --ops instancenorm --shapes 32x64x128x128 --csv $OUT/$which-in-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
    done
  done
done
echo "end $(uptime)" >> $OUT/log.txt
