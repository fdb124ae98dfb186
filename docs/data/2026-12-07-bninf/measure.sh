#!/bin/bash
# Paired A/B of the short-run output pass (Apply.shortRuns): base = main's normbench (1a2e0a5, same speed as
# a008eca), new = this branch. ALTERNATING rounds (odd rounds base first, even rounds new first).
# Cases: BatchNorm NCHW inference and training forward [64,512,7,7] (49-value runs) and [8,256,14,14]
# (196-value runs), 1 and 2 threads, f32/f16/bf16; GroupNorm (G 32) and InstanceNorm NCHW [64,512,7,7]
# (they share CoefficientTable.applyRuns); control: LayerNorm [8192,1024] f32 (code unchanged).
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-bninf/measure.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-6}
BASE=${BASE:-/tmp/nb-base-bninf}; NEW=${NEW:-.build-release/release/normbench}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
BN="sweep --ops batchnorm --layouts nchw --dtype f32,f16,bf16 --shapes 64x512x7x7,8x256x14x14 --directions forward-inference,forward-training --threads 1,2 --budget-ms 150"
GN="sweep --ops groupnorm,instancenorm --layouts nchw --dtype f32 --shapes 64x512x7x7 --groups 32 --directions forward-training,forward-inference --threads 1 --budget-ms 150"
LN="sweep --ops layernorm --dtype f32 --shapes 8192x1024x1x1 --directions forward-training --threads 1,2 --budget-ms 150"
one() { $1 $BN --csv "$OUT/$2-bn-r$3.csv" > /dev/null; $1 $GN --csv "$OUT/$2-gn-r$3.csv" > /dev/null; $1 $LN --csv "$OUT/$2-ln-r$3.csv" > /dev/null; }
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then one $BASE base $r; one $NEW new $r; else one $NEW new $r; one $BASE base $r; fi
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
