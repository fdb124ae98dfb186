#!/bin/bash
# Paired A/B of LayerNorm 16-bit forward: base (f85e6bc's normbench) and new, alternating rounds.
# Usage (from the worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-06-ln16/measure.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-5}
BASE=/tmp/nb-base-ln16; NEW=.build-release/release/normbench
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm --dtype bf16,f16 --shapes 8192x1024x1x1,16384x768x1x1,2048x4096x1x1 --directions forward-training --threads 1,2 --budget-ms 250"
for r in $(seq 1 $ROUNDS); do
  $BASE $ARGS --csv "$OUT/base-r$r.csv" > /dev/null
  $NEW $ARGS --csv "$OUT/new-r$r.csv" > /dev/null
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
