#!/bin/bash
# Is the BFloat16 LayerNorm [16384, 768] slowdown the C loop's? base (main), new3 (this branch), new3 with the C
# sweep off (NORMKERNELS_ROW_SUMS16=never: the Swift loop, in this branch's binary), rotated order, ROUNDS rounds.
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/never.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-4}
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm,rmsnorm --dtype f32,bf16,f16 --shapes 16384x768x1x1,8192x1024x1x1 --directions backward --threads 1,2 --budget-ms 120"
run() {
  case $1 in
    base) /tmp/nb-base-ln16c $ARGS --csv "$OUT/base-r$2.csv" ;;
    new) /tmp/nb-new3-ln16c $ARGS --csv "$OUT/v1-r$2.csv" ;;
    never) NORMKERNELS_ROW_SUMS16=never /tmp/nb-new3-ln16c $ARGS --csv "$OUT/v2-r$2.csv" ;;
  esac > /dev/null
}
ORDERS=("base new never" "new never base" "never base new")
for r in $(seq 1 $ROUNDS); do for t in ${ORDERS[$(( (r - 1) % 3 ))]}; do run $t $r; done; done
{ date -u; uptime; } > "$OUT/machine-end.txt"
