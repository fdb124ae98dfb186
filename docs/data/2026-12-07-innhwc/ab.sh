#!/bin/bash
# A/B of normbench binaries in alternating rounds (order swapped every round).
# usage: ab.sh OUTDIR ROUNDS -- normbench sweep flags...
# Variants: base = main's binary (a69a4f6 code) /tmp/nb-base-innhwc;
#           new = this branch's binary /tmp/nb-new-innhwc;
#           off = this branch's binary with NORMKERNELS_PIPELINE_ROWS=0 (pipelining off).
# VARIANTS env (default "base new") picks which run.
OUT=$1; R=$2; shift 3
VARIANTS=${VARIANTS:-"base new"}
mkdir -p "$OUT"
echo "command: normbench sweep $*" >> "$OUT/log.txt"
echo "cpu: $(lscpu | grep 'Model name' | sed 's/  */ /g')" >> "$OUT/log.txt"
for r in $(seq 1 "$R"); do
  order=$VARIANTS
  if [ $((r % 2)) -eq 0 ]; then order=$(echo $VARIANTS | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for v in $order; do
    echo "round $r $v start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
    case $v in
      base) /tmp/nb-base-innhwc sweep "$@" --csv "$OUT/base-$r.csv" > "$OUT/base-$r.out" 2>&1 ;;
      new)  /tmp/nb-new-innhwc sweep "$@" --csv "$OUT/new-$r.csv" > "$OUT/new-$r.out" 2>&1 ;;
      off)  NORMKERNELS_PIPELINE_ROWS=0 /tmp/nb-new-innhwc sweep "$@" --csv "$OUT/off-$r.csv" > "$OUT/off-$r.out" 2>&1 ;;
      rows*) NORMKERNELS_PIPELINE_ROWS=${v#rows} /tmp/nb-new-innhwc sweep "$@" --csv "$OUT/$v-$r.csv" > "$OUT/$v-$r.out" 2>&1 ;;
    esac
  done
done
echo "finished $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
