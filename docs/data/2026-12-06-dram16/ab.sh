#!/usr/bin/env bash
# A/B base (main f85e6bc, /tmp/nb-base-dram16) vs new (branch dram16), alternating rounds,
# f32 in the same run for the 16-bit/f32 ratio. Run as: flock -x /work/notes/machine.lock bash ab.sh
BASE=${BASE:-/tmp/nb-base-dram16}
NEW=${NEW:-/work/wt-dram16/.build-release/release/normbench}
OUT=${OUT:-/work/wt-dram16/docs/data/2026-12-06-dram16/ab}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq 1 ${ROUNDS:-4}); do
  for v in base new; do
    if [ $v = base ]; then BIN=$BASE; else BIN=$NEW; fi
    for t in ${THREADS:-1 2}; do
      echo "round $r $v threads $t $(uptime)" >> $OUT/log.txt
      $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype f32,bf16,f16 --directions forward-training --paired-copy \
        --ops groupnorm --groups 32 --layouts nchw --shapes 64x128x56x56 --csv $OUT/$v-gn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
      $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype f32,bf16,f16 --directions forward-training --paired-copy \
        --ops instancenorm --layouts nchw --shapes 32x64x128x128 --csv $OUT/$v-in-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
    done
  done
done
echo "end $(uptime)" >> $OUT/log.txt
