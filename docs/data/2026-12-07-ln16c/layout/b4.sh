#!/bin/bash
date -u; uptime
B=/tmp/nb-exp-ln16h
run() { echo -n "$1 $3 | "; env $2 $B sweep --ops layernorm,rmsnorm --dtype bf16,f16 --directions backward --shapes $3 --threads $4 --budget-ms 200 --csv /tmp/ln16h/exp4-$1-$r.csv >/dev/null 2>&1; python3 -c "
import csv,sys
for row in csv.DictReader(open('/tmp/ln16h/exp4-$1-$r.csv')): print(row['op'][:3],row['dtype'],row['threads'],row['median_ms'], end='  ')
print()"; }
for r in 1 2; do
 for v in "def:X=1" "never:NORMKERNELS_ROW_SUMS16=never" "a16k:NK_RS_EXP_AHEAD=8192" "a24k:NK_RS_EXP_AHEAD=12288"; do run ${v%%:*} ${v#*:} 8192x1024x1x1 1; run ${v%%:*} ${v#*:} 16384x768x1x1 2; done
done
date -u; uptime
