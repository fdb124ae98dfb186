#!/bin/bash
# A/B of NORMKERNELS_AVX512_WELFORD=never (Swift 16-bit loops, which since pf2 also prefetch into L2) against the default (AVX-512 C loops), same binary
B=/work/main/.build-release/release/normbench
O=/tmp/wf; lscpu | grep "Model name" > $O/start.txt; uptime >> $O/start.txt
args="sweep --ops batchnorm --layouts nchw --shapes 128x64x56x56,32x256x56x56 --dtype bf16,f16 --directions forward-training,backward --threads 1,2 --budget-ms 300"
for r in 1 2 3 4 5 6; do
 if [ $((r % 2)) -eq 1 ]; then order="c swift"; else order="swift c"; fi
 for w in $order; do
  if [ $w = swift ]; then export NORMKERNELS_AVX512_WELFORD=never; else unset NORMKERNELS_AVX512_WELFORD; fi
  $B $args --csv $O/$w-r$r.csv >/dev/null 2>&1
 done
done
unset NORMKERNELS_AVX512_WELFORD; uptime > $O/end.txt
