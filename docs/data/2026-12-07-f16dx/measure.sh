#!/usr/bin/env bash
# BatchNorm NCHW training forward and backward on the DRAM set's shapes, f32 (the denominator; its path is
# unchanged: the control) / bf16 / f16: base (main's binary, b80cff7 = f9f683e speed) vs new (branch f16dx),
# alternating which goes first, threads THREADS, rounds FIRST..LAST, shapes SHAPES.
# WHICH adds variants of the new binary: nodx (NORMKERNELS_F16_DX=never: the Swift Float16 dx loop) and
# nopf (NORMKERNELS_OUTPUT_PREFETCH=never: no prefetch in the 16-bit output/dx passes), cached
# (NORMKERNELS_STREAMING=never: cached stores for every output, Float32 too).
# Run as: flock -x /work/notes/machine.lock bash measure.sh
BASE=${BASE:-/tmp/nb-base-f16dx}
NEW=${NEW:-/tmp/nb-new-f16dx}
OUT=${OUT:-/work/wt-f16dx/docs/data/2026-12-07-f16dx/raw}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq ${FIRST:-1} ${LAST:-3}); do
  if [ $((r % 2)) -eq 1 ]; then order="${WHICH:-base new}"; else order=$(echo ${WHICH:-base new} | tr ' ' '\n' | tac | tr '\n' ' '); fi
  echo "round $r order $order $(uptime)" >> $OUT/log.txt
  for which in $order; do
    case $which in
      base) BIN=$BASE; ENV="" ;;
      new) BIN=$NEW; ENV="" ;;
      nodx) BIN=$NEW; ENV="NORMKERNELS_F16_DX=never" ;;
      nopf) BIN=$NEW; ENV="NORMKERNELS_OUTPUT_PREFETCH=never" ;;
      cached) BIN=$NEW; ENV="NORMKERNELS_STREAMING=never" ;;
    esac
    for t in ${THREADS:-1 2}; do
      env $ENV $BIN sweep --threads $t --budget-ms ${BUDGET:-250} --dtype ${DTYPES:-f32,bf16,f16} \
        --directions ${DIRECTIONS:-forward-training,backward} --layouts nchw --ops batchnorm \
        --shapes ${SHAPES:-128x64x56x56,32x256x56x56} --csv $OUT/$which-bn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
    done
  done
done
echo "end $(uptime)" >> $OUT/log.txt
