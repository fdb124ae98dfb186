#!/bin/bash
# main (2112e6d) against s16 (the 16-bit forward statistics in the Swift Welford loop, the dx prefetch switch removed):
# BatchNorm NCHW 16-bit training forward and backward, the DRAM set's shapes, plus Float32 as control; 6 alternating rounds.
BASE=${BASE:-/tmp/nb-main-2112e6d}; NEW=${NEW:-/work/wt-s16/.build-release/release/normbench}
O=${O:-/tmp/s16}; mkdir -p $O; lscpu | grep "Model name" > $O/start.txt; uptime >> $O/start.txt
args="sweep --ops batchnorm --layouts nchw --shapes 128x64x56x56,32x256x56x56 --dtype f32,bf16,f16 --directions forward-training,backward --threads 1,2 --budget-ms 250"
for r in 1 2 3 4 5 6; do
 if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
 for w in $order; do
  if [ $w = base ]; then B=$BASE; else B=$NEW; fi
  $B $args --csv $O/$w-r$r.csv >/dev/null 2>&1
 done
done
uptime > $O/end.txt
