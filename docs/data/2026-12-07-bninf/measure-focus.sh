#!/bin/bash
# Second, focused paired A/B (after ab/ showed Float32 training [64,512,7,7] 1 thread at 0.71x with the
# LayerNorm control itself at 0.87-0.90x): Float32 BatchNorm NCHW [64,512,7,7] inference and training
# forward, 1 and 2 threads, 300 ms per case; control LayerNorm [8192,1024]. ALTERNATING rounds.
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-bninf/measure-focus.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-8}
BASE=${BASE:-/tmp/nb-base-bninf}; NEW=${NEW:-/tmp/nb-new-bninf}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
BN="sweep --ops batchnorm --layouts nchw --dtype f32 --shapes 64x512x7x7 --directions forward-inference,forward-training --threads 1,2 --budget-ms 300"
LN="sweep --ops layernorm --dtype f32 --shapes 8192x1024x1x1 --directions forward-training --threads 1,2 --budget-ms 300"
one() { $1 $BN --csv "$OUT/$2-bn-r$3.csv" > /dev/null; $1 $LN --csv "$OUT/$2-ln-r$3.csv" > /dev/null; }
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then one $BASE base $r; one $NEW new $r; else one $NEW new $r; one $BASE base $r; fi
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
