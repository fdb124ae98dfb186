#!/bin/bash
# Paired A/B of Float16 LayerNorm forward: base (main's 1a2e0a5 normbench, copied to /tmp/nb-base-ln16h) and
# new (this branch), ALTERNATING rounds (odd rounds base first, even rounds new first). Control: BFloat16 at
# the same shapes (its item loop is now the shared one; its machine code is unchanged).
# Usage (from the worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16h/measure.sh OUTDIR [ROUNDS]
# Table: python3 docs/data/2026-12-06-ln16/analyze.py OUTDIR
set -e
OUT=${1:?outdir}; ROUNDS=${2:-6}
BASE=${BASE:-/tmp/nb-base-ln16h}; NEW=${NEW:-.build-release/release/normbench}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm --dtype f16,bf16 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions forward-training --threads 1,2 --budget-ms 200"
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
