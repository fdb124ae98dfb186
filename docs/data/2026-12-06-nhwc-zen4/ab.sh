#!/bin/bash
# A/B of two normbench binaries in alternating rounds.
# usage: ab.sh OUTDIR ROUNDS NAME -- normbench sweep flags...
OUT=$1; R=$2; NAME=$3; shift 4
mkdir -p "$OUT"
echo "command: normbench sweep $*" >> "$OUT/log.txt"
for r in $(seq 1 "$R"); do
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for v in $order; do
    echo "round $r $v $NAME start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
    /tmp/nb-$v-nhwcl2 sweep "$@" --csv "$OUT/$v-$NAME-$r.csv" > "$OUT/$v-$NAME-$r.out" 2>&1
  done
done
echo "finished $NAME $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
