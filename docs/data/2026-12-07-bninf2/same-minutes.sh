#!/bin/bash
# Same-minute rounds: normbench (default store policy, NORMKERNELS_STREAMING=never,
# =always), PyTorch with the recycling allocator, ONNX Runtime, on BatchNorm
# inference of the peer set. Usage: same-minutes.sh NORMBENCH OUTDIR ROUNDS [extra normbench sweep args]
# Run under: flock -x /work/notes/machine.lock
set -e
NB=$1; OUT=$2; ROUNDS=${3:-3}; shift 3 || true
PY=/work/torchvenv/bin/python
CASE="--ops batchnorm --directions forward-inference --layouts nchw,nhwc --shapes 32x64x56x56,8x256x28x28,64x512x7x7,4096x1024x1x1 --threads 1,2 --budget-ms 300"
mkdir -p "$OUT"
{ lscpu | grep "Model name"; uptime; } > "$OUT/machine.txt"
for r in $(seq 1 "$ROUNDS"); do
  "$NB" sweep $CASE "$@" --csv "$OUT/r$r-default.csv" > /dev/null
  NORMKERNELS_STREAMING=never "$NB" sweep $CASE "$@" --csv "$OUT/r$r-never.csv" > /dev/null
  NORMKERNELS_STREAMING=always "$NB" sweep $CASE "$@" --csv "$OUT/r$r-always.csv" > /dev/null
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 $PY tools/torch_compare.py $CASE --csv "$OUT/r$r-torch.csv" > /dev/null
  $PY tools/ort_compare.py $CASE --csv "$OUT/r$r-ort.csv" > /dev/null 2>&1 || true
done
uptime >> "$OUT/machine.txt"
