#!/bin/bash
# Forward (two-pass) store kinds below the current threshold (x + y < 3/4 of the 32 MiB L3):
# NORMKERNELS_STREAMING=never against =always, one binary, 1 and 2 threads, 4 alternating rounds.
B=${B:-/tmp/nb-main-2112e6d}; O=${O:-/tmp/fwdstore}  # main 2112e6d; mkdir -p $O
lscpu | grep "Model name" > $O/start.txt; uptime >> $O/start.txt
run() { # kind round
  export NORMKERNELS_STREAMING=$1
  $B sweep --ops batchnorm --layouts nchw --directions forward-training --shapes 6x64x56x56,10x64x56x56,12x64x56x56,14x64x56x56 --threads 1,2 --budget-ms 150 --csv $O/$1-bn-r$2.csv >/dev/null 2>&1
  $B sweep --ops instancenorm --layouts nhwc --directions forward-training --shapes 6x64x56x56,10x64x56x56,12x64x56x56,14x64x56x56 --threads 1,2 --budget-ms 150 --csv $O/$1-in-r$2.csv >/dev/null 2>&1
  $B sweep --ops groupnorm --layouts nhwc,nchw --groups 32 --directions forward-training --shapes 1x320x64x64,2x320x48x48,2x320x56x56,2x320x64x64 --threads 1,2 --budget-ms 150 --csv $O/$1-gn-r$2.csv >/dev/null 2>&1
  $B sweep --ops layernorm --directions forward-training --shapes 1280x1024x1x1,2048x1024x1x1,2560x1024x1x1,2816x1024x1x1 --threads 1,2 --budget-ms 150 --csv $O/$1-ln-r$2.csv >/dev/null 2>&1
}
for r in 1 2 3 4; do
  if [ $((r % 2)) -eq 1 ]; then order="never always"; else order="always never"; fi
  for k in $order; do run $k $r; done
done
unset NORMKERNELS_STREAMING; uptime > $O/end.txt
