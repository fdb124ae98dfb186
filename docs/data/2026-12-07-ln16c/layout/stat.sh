#!/bin/bash
B=/tmp/nb-new3-ln16c
ARGS="sweep --ops layernorm --dtype bf16 --directions backward --shapes 16384x768x1x1 --threads 1 --budget-ms 1500"
EV=cycles,instructions,L1-dcache-loads,L1-dcache-load-misses,r0224,r0035,r0e0e,r0f0e,r0160
for mode in on never on never; do
  for op in layernorm rmsnorm; do
   echo "== $mode $op"
   if [ $mode = never ]; then export NORMKERNELS_ROW_SUMS16=never; else unset NORMKERNELS_ROW_SUMS16; fi
   perf stat -x, -e $EV $B ${ARGS/layernorm/$op} 2>&1 | grep -E "backward|,r0|cycles|instr|L1" 
  done
done
