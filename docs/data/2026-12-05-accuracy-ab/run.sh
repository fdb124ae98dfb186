#!/bin/bash
# usage: run.sh tag rounds args...
tag=$1; rounds=$2; shift 2
for r in $(seq 1 $rounds); do
  for v in base new; do
    if [ $v = base ]; then b=/tmp/acc-base/.build-release/release/normbench; else b=/work/wt-acc/.build-release/release/normbench; fi
    $b sweep "$@" --csv /tmp/ab/$tag-$v-$r.csv > /tmp/ab/$tag-$v-$r.txt 2>/dev/null
  done
done
