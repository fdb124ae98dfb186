#!/bin/bash
# Run from this folder under flock -x: perf (cpu-clock, 2 kHz) of IN NHWC backward [32,64,56,56] t1,
# this branch's pipelined binary with 16 rows per step and with pipelining off.
uptime > profiles/uptime.txt
for rows in 16 0; do
  NORMKERNELS_PIPELINE_ROWS=$rows perf record -e cpu-clock -F 2000 -q -o /tmp/innhwc/rows$rows.data -- /tmp/nb-new-innhwc sweep \
    --ops instancenorm --layouts nhwc --shapes 32x64x56x56 --directions backward --threads 1 --budget-ms 2000 > profiles/rows$rows.out 2>&1
  perf report -q -n -i /tmp/innhwc/rows$rows.data --sort symbol --stdio 2>/dev/null | head -15 | cut -c1-160 > profiles/rows$rows.report
done
uptime >> profiles/uptime.txt
