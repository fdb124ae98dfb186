#!/bin/bash
# main (73f2965 code) against the branch's final binary (two memory-order passes + 9–31-value runs + GN row blocks):
# BatchNorm NCHW short-run backward in and past the cache, Float32 / BFloat16 / fused add + ReLU, 1 and 2 threads.
BASE=${BASE:-/tmp/nb-main-head}; NEW=${NEW:-/tmp/nb-smallbwd2}; O=${O:-docs/data/2026-12-07-smallbwd/ab2}
python3 tools/ab.py --base $BASE --new $NEW --rounds ${ROUNDS:-6} --budget-ms 100 --out $O \
  --case "--ops batchnorm --layouts nchw --directions backward --shapes 128x256x4x4,256x256x3x3,64x512x7x7,256x512x7x7,2048x256x4x4,256x512x2x2 --threads 1,2" \
  --case "--ops batchnorm --dtype bf16 --layouts nchw --directions backward --shapes 128x256x4x4,64x512x7x7,256x512x7x7 --threads 1,2" \
  --case "--ops batchnorm-add-relu --layouts nchw --directions backward --shapes 64x512x7x7,8x256x28x28 --threads 1,2" \
  --case "--ops groupnorm --groups 32 --layouts nchw --directions backward --shapes 128x256x4x4 --threads 1,2"
