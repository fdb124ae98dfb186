#!/bin/bash
# Three binaries in rotated order each round (base = main, v1 = C sweep with 8 KiB prefetch, v2 = prefetch max(8 KiB, group)).
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/three.sh OUTDIR [ROUNDS]
set -e
OUT=${1:?outdir}; ROUNDS=${2:-4}
declare -A BIN=([base]=/tmp/nb-base-ln16c [v1]=/tmp/nb-new-ln16c [v2]=/tmp/nb-new2-ln16c)
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; for k in "${!BIN[@]}"; do echo "$k=${BIN[$k]}"; done; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm,rmsnorm --dtype f32,bf16,f16 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions backward --threads 1,2 --budget-ms 120"
ORDERS=("base v1 v2" "v1 v2 base" "v2 base v1")
for r in $(seq 1 $ROUNDS); do
  for t in ${ORDERS[$(( (r - 1) % 3 ))]}; do ${BIN[$t]} $ARGS --csv "$OUT/$t-r$r.csv" > /dev/null; done
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
