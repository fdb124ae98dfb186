#!/bin/bash
# Run under: flock -x /work/notes/machine.lock ./measure.sh   (from this folder)
D=$(cd "$(dirname "$0")" && pwd)
uptime > "$D/uptime-start.txt"
# 1) main's binary vs this branch, 6 alternating rounds; IN NCHW backward is the unchanged control.
"$D/ab.sh" "$D/ab-main" 6 -- --ops instancenorm,groupnorm --layouts nhwc,nchw --groups 32 \
    --shapes 32x64x56x56,1x64x256x256 --directions backward --threads 1,2 --budget-ms 400
# 2) rows per step (NORMKERNELS_PIPELINE_ROWS; 0 = off), same binary, 3 alternating rounds.
VARIANTS="off rows4 rows16 rows64 rows256" "$D/ab.sh" "$D/steps" 3 -- --ops instancenorm --layouts nhwc \
    --shapes 32x64x56x56 --directions backward --threads 1,2 --budget-ms 400
uptime > "$D/uptime-end.txt"
