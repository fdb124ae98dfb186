#!/bin/bash
# perf record one case each, 1 thread: base binary (all), new binary (16-bit); then one quick A/B round.
echo "start $(date -u) $(uptime)"
for dt in bf16 f16 f32; do for dir in forward-training backward; do
  perf record -q -g -o /tmp/f16dx/perf-base-$dt-$dir.data -- /tmp/nb-base-f16dx sweep --ops batchnorm --layouts nchw --dtype $dt --directions $dir --shapes 128x64x56x56 --threads 1 --budget-ms 2000 --csv /tmp/f16dx/prof-base-$dt-$dir.csv > /dev/null 2>&1
done; done
for dt in bf16 f16; do for dir in forward-training backward; do
  perf record -q -g -o /tmp/f16dx/perf-new-$dt-$dir.data -- /tmp/nb-new-f16dx sweep --ops batchnorm --layouts nchw --dtype $dt --directions $dir --shapes 128x64x56x56 --threads 1 --budget-ms 2000 --csv /tmp/f16dx/prof-new-$dt-$dir.csv > /dev/null 2>&1
done; done
echo "perf done $(date -u)"
FIRST=1 LAST=1 BUDGET=150 OUT=/work/wt-f16dx/docs/data/2026-12-07-f16dx/raw bash /work/wt-f16dx/docs/data/2026-12-07-f16dx/measure.sh
echo "end $(date -u) $(uptime)"
