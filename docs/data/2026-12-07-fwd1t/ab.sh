#!/bin/bash
# main (2112e6d) against fwd1t (one-thread store rule at 1/2 of the cache): cases between 1/2 and 3/4 of the 32 MiB L3,
# forward (x + y) and backward (x + dy + dx), 1 thread (should move) and 2 threads (control: same decision), 6 alternating rounds.
BASE=${BASE:-/tmp/nb-main-2112e6d}; NEW=${NEW:-/work/wt-fwd1t/.build-release/release/normbench}
O=${O:-/tmp/fwd1t}; mkdir -p $O; lscpu | grep "Model name" > $O/start.txt; uptime >> $O/start.txt
run() { # binary tag
  $1 sweep --ops batchnorm,instancenorm --layouts nchw,nhwc --directions forward-training --shapes 12x64x56x56 --threads 1,2 --budget-ms 150 --csv $O/$2-fwd-bnin.csv >/dev/null 2>&1
  $1 sweep --ops groupnorm --layouts nhwc,nchw --groups 32 --directions forward-training --shapes 2x320x64x64 --threads 1,2 --budget-ms 150 --csv $O/$2-fwd-gn.csv >/dev/null 2>&1
  $1 sweep --ops layernorm,rmsnorm --directions forward-training --shapes 2560x1024x1x1 --threads 1,2 --budget-ms 150 --csv $O/$2-fwd-rows.csv >/dev/null 2>&1
  $1 sweep --ops batchnorm,instancenorm --layouts nchw,nhwc --directions backward --shapes 8x64x56x56 --threads 1,2 --budget-ms 150 --csv $O/$2-bwd-bnin.csv >/dev/null 2>&1
  $1 sweep --ops groupnorm --layouts nhwc,nchw --groups 32 --directions backward --shapes 2x320x50x50 --threads 1,2 --budget-ms 150 --csv $O/$2-bwd-gn.csv >/dev/null 2>&1
  $1 sweep --ops layernorm,rmsnorm --directions backward --shapes 1792x1024x1x1 --threads 1,2 --budget-ms 150 --csv $O/$2-bwd-rows.csv >/dev/null 2>&1
}
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for w in $order; do
    if [ $w = base ]; then run $BASE base-r$r; else run $NEW new-r$r; fi
  done
done
uptime > $O/end.txt
