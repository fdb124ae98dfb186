#!/bin/bash
# One normbench under NORMKERNELS_STREAMED_EIGHTHS = each of $EIGHTHS (of every 8 output
# blocks, how many stream), then PyTorch (recycling allocator), round after round.
# Usage: eighths.sh NORMBENCH OUTDIR ROUNDS "CASE ARGS"; run under flock -x /work/notes/machine.lock
set -e
NB=$1; OUT=$2; ROUNDS=$3; CASE=$4
EIGHTHS=${EIGHTHS:-"8 4 0"}
PY=/work/torchvenv/bin/python
mkdir -p "$OUT"
{ lscpu | grep "Model name"; echo "normbench: $NB"; echo "case: $CASE"; echo "eighths: $EIGHTHS"; uptime; } > "$OUT/machine.txt"
for r in $(seq 1 "$ROUNDS"); do
  for e in $EIGHTHS; do
    NORMKERNELS_STREAMED_EIGHTHS=$e "$NB" sweep $CASE --csv "$OUT/r$r-e$e.csv" > /dev/null 2>&1
  done
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 $PY tools/torch_compare.py $CASE --csv "$OUT/r$r-torch.csv" > /dev/null 2>&1
done
uptime >> "$OUT/machine.txt"
