#!/bin/bash
date -u; uptime
B=/tmp/nb-exp2-ln16h
for r in 1 2 3; do
 for v in "def:X=1" "never:NORMKERNELS_ROW_SUMS16=never" "zx:NK_RS_EXP_ZX=1" "zxr2:NK_RS_EXP_ZX=1 NK_RS_EXP_RMAX=2"; do
   n=${v%%:*}; e=${v#*:}; echo -n "$n | "; env MALLOC_MMAP_THRESHOLD_=131072 $e $B sweep --ops layernorm --dtype bf16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1 --threads 1 --budget-ms 150 --csv /tmp/ln16h/e10-$n-$r.csv >/dev/null 2>&1; python3 -c "import csv; print('  '.join(r['dtype']+' '+r['C']+' '+r['median_ms'][:5] for r in csv.DictReader(open('/tmp/ln16h/e10-$n-$r.csv'))))"
 done
done
date -u; uptime
