#!/bin/bash
set -x
uptime
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
for t in 1 2; do /tmp/nb-base-innhwc sweep --ops instancenorm --layouts nhwc --shapes 32x64x56x56 --directions backward --threads $t --budget-ms 1000 | tail -3; /work/torchvenv/bin/python torchcase.py $t 1.5; done
perf record -e cpu-clock -F 2000 -q -o base-t1.data -- /tmp/nb-base-innhwc sweep --ops instancenorm --layouts nhwc --shapes 32x64x56x56 --directions backward --threads 1 --budget-ms 2000 > /dev/null 2>&1
perf record -e cpu-clock -F 2000 -q -o torch-t1.data -- /work/torchvenv/bin/python torchcase.py 1 3 
perf report -q -n -i base-t1.data --sort symbol --stdio 2>/dev/null | head -20 | cut -c1-200
perf report -q -n -i torch-t1.data --sort dso,symbol --stdio 2>/dev/null | head -30 | cut -c1-200
uptime
