#!/bin/bash
# Alternating rounds, same minutes: ours (main's binary, NORMKERNELS_STREAMING default/always/never)
# vs PyTorch default and PyTorch recycling (glibc keeps freed blocks) on the two issue-18 cases.
# usage: peers-alt.sh FIRST_ROUND LAST_ROUND
B=/tmp/nb-base-innhwc; PY=/work/torchvenv/bin/python; OUT=/tmp/innhwc/pa
mkdir -p $OUT; cd /work/wt-innhwc
IN="--ops instancenorm --layouts nhwc --directions backward --shapes 32x64x56x56"
GN="--ops groupnorm --layouts nhwc --directions forward-training --groups 32 --shapes 2x320x64x64,32x64x56x56"
ours() { # $1 tag, env in NORMKERNELS_STREAMING
  $B sweep $IN --threads 1,2 --budget-ms 200 --csv $OUT/r$r-ours$1-in.csv > /dev/null 2>&1
  $B sweep $GN --threads 1,2 --budget-ms 200 --csv $OUT/r$r-ours$1-gn.csv > /dev/null 2>&1
}
torch() {
  $PY tools/torch_compare.py $IN --threads 1,2 --budget-ms 200 --csv $OUT/r$r-torch$1-in.csv > /dev/null 2>&1
  $PY tools/torch_compare.py $GN --threads 1,2 --budget-ms 200 --csv $OUT/r$r-torch$1-gn.csv > /dev/null 2>&1
}
echo "start $(uptime)"
for r in $(seq $1 $2); do
  if [ $((r % 2)) = 1 ]; then
    ours ""; NORMKERNELS_STREAMING=always ours "-always"; NORMKERNELS_STREAMING=never ours "-never"
    torch ""; MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 torch "-recycling"
  else
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 torch "-recycling"; torch ""
    NORMKERNELS_STREAMING=never ours "-never"; NORMKERNELS_STREAMING=always ours "-always"; ours ""
  fi
  echo "round $r done $(date -u +%T)"
done
echo "end $(uptime)"
