#!/bin/bash
# main (73f2965 code) against branch tidy: BatchNorm NCHW backward on 3×3/4×4/5×5 planes (runs of 9–31 values),
# GroupNorm NCHW small-map backward (row blocks), controls: BatchNorm 7×7 (runs of 49), GroupNorm 56×56, LayerNorm.
BASE=${BASE:-/tmp/nb-main-head}; NEW=${NEW:-/tmp/nb-smallbwd}; O=${O:-docs/data/2026-12-07-smallbwd/ab}
python3 tools/ab.py --base $BASE --new $NEW --rounds ${ROUNDS:-6} --budget-ms 100 --out $O \
  --case "--ops batchnorm --layouts nchw --directions backward --shapes 128x256x4x4,256x256x3x3,128x512x5x5,64x512x7x7 --threads 1,2" \
  --case "--ops groupnorm --groups 32 --layouts nchw --directions backward --shapes 128x256x4x4,256x128x2x2,64x512x7x7,32x64x56x56 --threads 1,2" \
  --case "--ops layernorm --directions backward --shapes 2048x1024x1x1 --threads 1,2"
