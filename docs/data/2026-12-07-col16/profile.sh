#!/usr/bin/env bash
# perf profile of Float16 InstanceNorm NHWC backward [32,64,128,128], 1 thread: base (main a69a4f6) and new.
# Run as: flock -x /work/notes/machine.lock bash profile.sh
OUT=${OUT:-/work/wt-col16/docs/data/2026-12-07-col16/raw}
mkdir -p $OUT
for which in base new; do
  perf record -q -o /tmp/col16-perf-$which.data -- /tmp/nb-$which-col16 sweep --threads 1 --budget-ms 1500 --dtype f16 \
    --directions backward --layouts nhwc --ops instancenorm --shapes 32x64x128x128 > /dev/null 2>&1
  perf report -q -i /tmp/col16-perf-$which.data --no-children --sort symbol 2>/dev/null | head -25 > $OUT/perf-$which-f16-in-nhwc-t1.txt
done
