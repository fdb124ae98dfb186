#!/bin/sh
# Issue 21, 16-bit fused kernels (branch fused16): base vs new normbench in
# alternating rounds. base = main at the branch point plus this branch's
# Harness change (the `batchnorm-add` op); new = the branch. Both built with
#   swift build -c release --package-path Harness --scratch-path <dir> -Xcc -march=x86-64-v3
# Usage: BASE=/path/normbench NEW=/path/normbench ROUNDS=3 sh measure.sh
set -u
BASE=${BASE:?base normbench}
NEW=${NEW:?new normbench}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(dirname "$0")}
for r in $(seq 1 "$ROUNDS"); do
  for v in base new; do
    if [ "$v" = base ]; then bin=$BASE; else bin=$NEW; fi
    echo "round $r $v: $(uptime)" >> "$OUT/load.txt"
    # 1. GroupNorm + SiLU backward, channel-groups paths.
    "$bin" sweep --dtype bf16,f16 --ops groupnorm-silu --groups 32 --shapes 2x320x64x64,2x1280x16x16 \
      --layouts nchw,nhwc --directions backward --threads 1,2 --budget-ms 200 \
      --csv "$OUT/gnsilu-bwd-$v-r$r.csv" > "$OUT/gnsilu-bwd-$v-r$r.log" 2>&1
    # 2. GroupNorm + SiLU forward, row-engine paths (8x512x4x4: expanded affine NCHW,
    #    group segments NHWC; 32x512x1x1: feature vectors; 2x1280x7x7 NCHW expanded
    #    affine, NHWC channel groups as a control).
    "$bin" sweep --dtype bf16,f16 --ops groupnorm-silu --groups 32 --shapes 8x512x4x4,32x512x1x1,2x1280x7x7 \
      --layouts nchw,nhwc --directions forward-training --threads 1,2 --budget-ms 200 \
      --csv "$OUT/gnsilu-fwd-$v-r$r.csv" > "$OUT/gnsilu-fwd-$v-r$r.log" 2>&1
    # 3. BatchNorm + add (no ReLU) backward: d identity = dy.
    "$bin" sweep --dtype f32,bf16 --ops batchnorm-add --shapes 32x64x56x56,8x256x28x28 \
      --layouts nchw,nhwc --directions backward --threads 1,2 --budget-ms 200 \
      --csv "$OUT/bnadd-bwd-$v-r$r.csv" > "$OUT/bnadd-bwd-$v-r$r.log" 2>&1
  done
done
