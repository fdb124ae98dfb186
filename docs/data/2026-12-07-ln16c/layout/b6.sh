#!/bin/bash
date -u; uptime
B=/tmp/nb-new3-ln16c
run() { echo -n "$1 [$3 $4] | "; env $2 $B sweep --ops $3 --dtype $4 --directions backward --shapes 16384x768x1x1 --threads 1 --budget-ms 300 --csv /tmp/ln16h/e6.csv >/dev/null 2>&1; python3 -c "
import csv,sys
for row in csv.DictReader(open('/tmp/ln16h/e6.csv')): print(row['op'][:3],row['dtype'],row['median_ms'], end='  ')
print()"; }
for r in 1 2; do
 for v in "on:X=1" "never:NORMKERNELS_ROW_SUMS16=never"; do
   run ${v%%:*} ${v#*:} layernorm,rmsnorm bf16
   run ${v%%:*} ${v#*:} rmsnorm,layernorm bf16
   run ${v%%:*} ${v#*:} layernorm f16,bf16
   run ${v%%:*} ${v#*:} layernorm f16
 done
done
date -u; uptime
