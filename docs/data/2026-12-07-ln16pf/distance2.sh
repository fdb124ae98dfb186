#!/bin/bash
# Confirmation of distance.sh: 4 KiB (/tmp/nb-d4-ln16pf) against 8 KiB (/tmp/nb-new-ln16pf) only, ALTERNATING
# rounds (odd rounds 8 KiB first). Usage (worktree root):
# flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16pf/distance2.sh OUTDIR [ROUNDS]; table: analyze.py OUTDIR
# (base = 8 KiB, new = 4 KiB there).
set -e
OUT=${1:?outdir}; ROUNDS=${2:-8}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm,rmsnorm --dtype f32,bf16,f16 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions backward --threads 1,2 --budget-ms 150"
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then
    /tmp/nb-new-ln16pf $ARGS --csv "$OUT/base-r$r.csv" > /dev/null; /tmp/nb-d4-ln16pf $ARGS --csv "$OUT/new-r$r.csv" > /dev/null
  else
    /tmp/nb-d4-ln16pf $ARGS --csv "$OUT/new-r$r.csv" > /dev/null; /tmp/nb-new-ln16pf $ARGS --csv "$OUT/base-r$r.csv" > /dev/null
  fi
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
