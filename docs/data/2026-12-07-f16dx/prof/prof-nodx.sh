#!/bin/bash
# Settles the nodx question: perf of f16 backward [128,64,56,56] t1 for base, new, new with NORMKERNELS_F16_DX=never.
for v in base new nodx; do
  case $v in base) B=/tmp/nb-base-f16dx; E="";; new) B=/tmp/nb-new-f16dx; E="";; nodx) B=/tmp/nb-new-f16dx; E="NORMKERNELS_F16_DX=never";; esac
  env $E perf record -q -g -o /tmp/f16dx/perf2-$v-f16-backward.data -- $B sweep --ops batchnorm --layouts nchw --dtype f16 --directions backward --shapes 128x64x56x56 --threads 1 --budget-ms 2000 --csv /tmp/f16dx/prof2-$v.csv > /dev/null 2>&1
  perf report -i /tmp/f16dx/perf2-$v-f16-backward.data --no-children --sort sym --stdio -g none 2>/dev/null | grep -v "^#" | grep "%" | head -6 | cut -c1-150 > /tmp/f16dx/prof2-$v.txt
done
date -u > /tmp/f16dx/prof2.done
