#!/bin/bash
# Paired A/B of the 16-bit row backwards (LayerNorm and RMSNorm, ShortRowsBackward) with ln16c's C sweep 1:
# base = main 9b68418 (code 73f2965) normbench /tmp/nb-main-head (copied to /tmp/nb-base-ln16c), new = this branch's (copied to /tmp/nb-new-ln16c),
# ALTERNATING rounds (odd rounds base first, even rounds new first). Control: Float32 at the same shapes (its loop
# must be unchanged: the C loop is for 16-bit types only, a constant of each specialization).
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/measure.sh OUTDIR [ROUNDS]
# Table: python3 docs/data/2026-12-07-ln16c/analyze.py OUTDIR
set -e
OUT=${1:?outdir}; ROUNDS=${2:-6}
BASE=${BASE:-/tmp/nb-base-ln16c}; NEW=${NEW:-/tmp/nb-new-ln16c}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; echo "BASE=$BASE NEW=$NEW"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm,rmsnorm --dtype f32,bf16,f16 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions backward --threads 1,2 --budget-ms 150"
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
