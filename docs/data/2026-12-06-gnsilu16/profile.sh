#!/bin/bash
# usage: profile.sh BINARY TAG  -> perf reports in /tmp/gnsilu16/prof-TAG-*.txt
B=$1; T=$2
run() { # name dtype dir layout shape threads
  local name=$1; shift
  perf record -q -e cpu-clock -o /tmp/gnsilu16/$T-$name.data -- $B sweep --ops groupnorm-silu --groups 32 \
     --dtype $1 --directions $2 --layouts $3 --shapes $4 --threads $5 --budget-ms 1500 > /dev/null 2>&1
  perf report -i /tmp/gnsilu16/$T-$name.data --no-children --sort symbol --percent-limit 1.5 2>/dev/null \
     | grep -v "^#" | grep -v "^$" | cut -c1-160 | head -25 > /tmp/gnsilu16/prof-$T-$name.txt
}
run fwd-nchw-bf16 bf16 forward-training nchw 2x320x64x64 1
run fwd-nchw-f32 f32 forward-training nchw 2x320x64x64 1
run bwd-nchw-bf16 bf16 backward nchw 2x320x64x64 1
run bwd-nchw-f32 f32 backward nchw 2x320x64x64 1
run bwd-nhwc-bf16 bf16 backward nhwc 2x1280x16x16 2
run bwd-nhwc-f32 f32 backward nhwc 2x1280x16x16 2
run fwd-nhwc-bf16 bf16 forward-training nhwc 2x320x64x64 1
