#!/bin/bash
# Prefetch distance of the 16-bit sweep-1 prefetch: three normbench builds of this branch that differ only in the
# distance (4 KiB /tmp/nb-d4-ln16pf, 8 KiB = PrefetchAhead.bytes /tmp/nb-new-ln16pf, 16 KiB /tmp/nb-d16-ln16pf),
# 16-bit LayerNorm/RMSNorm backward, ROUNDS rounds, the order rotated each round (d4 d8 d16, d8 d16 d4, d16 d4 d8).
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16pf/distance.sh OUTDIR [ROUNDS]
# Table: python3 docs/data/2026-12-07-ln16pf/distance.py OUTDIR
set -e
OUT=${1:?outdir}; ROUNDS=${2:-6}
declare -A BIN=([d4]=/tmp/nb-d4-ln16pf [d8]=/tmp/nb-new-ln16pf [d16]=/tmp/nb-d16-ln16pf)
ORDERS=("d4 d8 d16" "d8 d16 d4" "d16 d4 d8")
mkdir -p "$OUT"
{ date -u; uptime; lscpu | grep "Model name"; } > "$OUT/machine-start.txt"
ARGS="sweep --ops layernorm,rmsnorm --dtype bf16,f16 --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1 --directions backward --threads 1,2 --budget-ms 150"
for r in $(seq 1 $ROUNDS); do
  for t in ${ORDERS[$(( (r - 1) % 3 ))]}; do
    ${BIN[$t]} $ARGS --csv "$OUT/$t-r$r.csv" > /dev/null
  done
done
{ date -u; uptime; } > "$OUT/machine-end.txt"
