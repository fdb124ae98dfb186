#!/bin/bash
date -u; uptime
for r in 1 2 3; do
 if [ $((r % 2)) = 1 ]; then order="main def never r2"; else order="r2 never def main"; fi
 for n in $order; do
   case $n in main) B=/tmp/nb-main-head; e="X=1";; def) B=/tmp/nb-new3-ln16c; e="X=1";; never) B=/tmp/nb-new3-ln16c; e="NORMKERNELS_ROW_SUMS16=never";; r2) B=/tmp/nb-exp2-ln16h; e="NK_RS_EXP_RMAX=2";; esac
   echo -n "$n | "; env MALLOC_MMAP_THRESHOLD_=131072 $e $B sweep --ops layernorm,rmsnorm --dtype bf16,f16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --threads 1 --budget-ms 100 --csv /tmp/ln16h/e11-$n-$r.csv >/dev/null 2>&1; python3 -c "import csv; print('  '.join(r['op'][:3]+' '+r['dtype']+' '+r['C']+' '+r['median_ms'][:5] for r in csv.DictReader(open('/tmp/ln16h/e11-$n-$r.csv'))))"
 done
done
date -u; uptime
