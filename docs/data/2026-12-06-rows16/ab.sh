#!/bin/bash
# A/B: base (main 96bc2fa) vs new (rows16), alternating rounds.
# usage: ab.sh ROUNDS TAG [extra env for new]
R=${1:-4}; TAG=${2:-ab}
OUT=/tmp/rows16-ab/$TAG; mkdir -p $OUT
ARGS="sweep --ops layernorm,rmsnorm --directions forward-training,backward --dtype f32,bf16,f16 --shapes ${SHAPES:-32768x1024x1x1,8192x1024x1x1} --threads 1,2 --budget-ms ${BUDGET:-100}"
{ date -u; uptime; lscpu | grep "Model name"; } > $OUT/machine.txt
for r in $(seq 1 $R); do
  for b in base new; do
    echo "round $r $b $(date -u +%T) $(uptime | sed 's/.*load/load/')" >> $OUT/machine.txt
    env ${NEWENV:-X=1} /tmp/nb-$b-rows16 $ARGS --csv $OUT/$b-r$r.csv > $OUT/$b-r$r.txt 2>&1
  done
done
{ date -u; uptime; } >> $OUT/machine.txt
