#!/bin/bash
date -u; uptime
B=/tmp/nb-new3-ln16c
run() { echo -n "$1 [$3] | "; env $2 $B sweep --ops $3 --dtype bf16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1 --threads 1 --budget-ms 200 --csv /tmp/ln16h/e8.csv >/dev/null 2>&1; python3 -c "
import csv,sys
for row in csv.DictReader(open('/tmp/ln16h/e8.csv')): print(row['op'][:3],row['C'],row['dtype'],row['median_ms'], end='  ')
print()"; }
for r in 1 2 3; do
 for v in "on:X=1" "never:NORMKERNELS_ROW_SUMS16=never" "on-heap:MALLOC_MMAP_THRESHOLD_=33554432" "never-heap:NORMKERNELS_ROW_SUMS16=never MALLOC_MMAP_THRESHOLD_=33554432" "on-mmap:MALLOC_MMAP_THRESHOLD_=131072" "never-mmap:NORMKERNELS_ROW_SUMS16=never MALLOC_MMAP_THRESHOLD_=131072"; do
   n=${v%%:*}; e=${v#*:}; echo -n "$n [lay,rms] | "; env $e $B sweep --ops layernorm,rmsnorm --dtype bf16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1 --threads 1 --budget-ms 200 --csv /tmp/ln16h/e8-$n-$r.csv >/dev/null 2>&1; python3 -c "import csv; print('  '.join(r['op'][:3]+' '+r['C']+' '+r['median_ms'][:5] for r in csv.DictReader(open('/tmp/ln16h/e8-'+'$n-$r.csv'))))"
 done
done
date -u; uptime
