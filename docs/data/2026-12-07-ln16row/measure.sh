#!/bin/bash
# Paired A/B of BFloat16 LayerNorm forward: base (main's a69a4f6 normbench, same code as 9ed5597) and new
# (this branch), ALTERNATING rounds (odd rounds base first, even rounds new first). Control: Float32 at
# the same shapes (code unchanged) and bf16 [2048, 4096] (the C item loop runs there too).
# Usage (from the worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16row/measure.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-6}
BASE=/tmp/nb-base-ln16row; NEW=${NEW:-.build-release/release/normbench}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm --dtype bf16,f32 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions forward-training --threads 1,2 --budget-ms 200"
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then
    $BASE $ARGS --csv "$OUT/base-r$r.csv" > /dev/null
    $NEW $ARGS --csv "$OUT/new-r$r.csv" > /dev/null
  else
    $NEW $ARGS --csv "$OUT/new-r$r.csv" > /dev/null
    $BASE $ARGS --csv "$OUT/base-r$r.csv" > /dev/null
  fi
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
