#!/bin/bash
# One thread, tensors of 6–12.6 MB (under the 12.6 MB two-pass streaming threshold of a 32 MiB L3): default (cached) vs NORMKERNELS_STREAMING=always
B=/work/main/.build-release/release/normbench
O=/tmp/store1; uptime > $O/start.txt
for r in 1 2 3; do
 if [ $((r % 2)) -eq 1 ]; then order="default always"; else order="always default"; fi
 for mode in $order; do
  if [ $mode = default ]; then unset NORMKERNELS_STREAMING; else export NORMKERNELS_STREAMING=$mode; fi
  $B sweep --ops groupnorm --groups 32 --layouts nchw,nhwc --shapes 2x320x64x64,8x64x56x56 --directions forward-training,backward --threads 1 --budget-ms 150 --csv $O/gn-$mode-r$r.csv >/dev/null 2>&1
  $B sweep --ops batchnorm,instancenorm --layouts nchw,nhwc --shapes 8x64x56x56,2x128x96x96 --directions forward-training,backward --threads 1 --budget-ms 150 --csv $O/bn-$mode-r$r.csv >/dev/null 2>&1
  $B sweep --ops layernorm,rmsnorm --shapes 2048x1024x1x1,4096x768x1x1 --directions forward-training,backward --threads 1 --budget-ms 150 --csv $O/ln-$mode-r$r.csv >/dev/null 2>&1
 done
done
unset NORMKERNELS_STREAMING; uptime > $O/end.txt
