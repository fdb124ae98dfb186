#!/bin/bash
date -u; uptime
B=/tmp/nb-exp-ln16h
run() { echo -n "$1 | "; env $2 $B sweep --ops layernorm,rmsnorm --dtype bf16,f16 --directions backward --shapes 16384x768x1x1 --threads 1 --budget-ms 300 --csv /tmp/ln16h/exp-$1-$r.csv >/dev/null 2>&1; python3 -c "
import csv,sys
for row in csv.DictReader(open('/tmp/ln16h/exp-$1-$r.csv')): print(row['op'][:3],row['dtype'],row.get('median_ms') or row.get('ms_median') or list(row.values())[9], end='  ')
print()"; }
for r in 1 2 3; do
 for v in "def:X=1" "never:NORMKERNELS_ROW_SUMS16=never" "a16k:NK_RS_EXP_AHEAD=8192" "a24k:NK_RS_EXP_AHEAD=12288" "g2:NK_RS_EXP_AHEAD=-2" "g3:NK_RS_EXP_AHEAD=-3" "r2:NK_RS_EXP_RMAX=2" "r1:NK_RS_EXP_RMAX=1"; do run ${v%%:*} ${v#*:}; done
done
date -u; uptime
