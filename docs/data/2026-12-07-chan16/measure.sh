#!/usr/bin/env bash
# BatchNorm NCHW training forward and backward on the DRAM set's shape (docs/data/2026-12-06-dram16/dram-main.sh):
# base (main 1a2e0a5 binary) vs new (branch chan16), alternating which binary goes first, f32 (unchanged: the
# control) / bf16 / f16, threads THREADS, rounds FIRST..LAST; OPS=all adds GroupNorm and InstanceNorm NCHW (SKIPBN=1: only those).
# Run as: flock -x /work/notes/machine.lock bash measure.sh
BASE=${BASE:-/tmp/nb-base-chan16}
NEW=${NEW:-/tmp/nb-new-chan16}
OUT=${OUT:-/work/wt-chan16/docs/data/2026-12-07-chan16/raw}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq ${FIRST:-1} ${LAST:-3}); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  echo "round $r order $order $(uptime)" >> $OUT/log.txt
  for which in $order; do
    if [ $which = base ]; then BIN=$BASE; else BIN=$NEW; fi
    for t in ${THREADS:-2 1}; do
      [ "${SKIPBN:-0}" = 1 ] || $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype f32,bf16,f16 --directions forward-training,backward \
        --layouts nchw --ops batchnorm --shapes 128x64x56x56 --csv $OUT/$which-bn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      if [ "${OPS:-bn}" = all ]; then
        $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype f32,bf16,f16 --directions forward-training,backward \
          --layouts nchw --ops groupnorm --groups 32 --shapes 64x128x56x56 --csv $OUT/$which-gn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
        $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype f32,bf16,f16 --directions forward-training,backward \
          --layouts nchw --ops instancenorm --shapes 32x64x128x128 --csv $OUT/$which-in-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      fi
    done
  done
done
echo "end $(uptime)" >> $OUT/log.txt
