#!/usr/bin/env bash
# Paired A/B of BatchNorm NHWC Float32 backward: base (main f85e6bc's normbench)
# against this branch's, in alternating rounds, each round under the machine's
# exclusive lock (docs: /work/notes/HELPERS.md). Usage: measure.sh OUTDIR ROUNDS
set -u
OUT=${1:-/tmp/bnnhwc-ab}; ROUNDS=${2:-4}
BASE=${BASE:-/tmp/nb-base-bnnhwc}
NEW=${NEW:-/work/wt-bnnhwc/.build-release/release/normbench}
mkdir -p $OUT
lscpu | grep "Model name" > $OUT/machine.txt
for r in $(seq 1 $ROUNDS); do
  flock -x /work/notes/machine.lock bash -c "
    echo \"round R$r (new first) start \$(uptime)\" >> $OUT/log.txt
    for v in new base; do
      BIN=\$([ \$v = base ] && echo $BASE || echo $NEW)
      \$BIN sweep --ops batchnorm --layouts nhwc --directions backward --threads 1,2 --budget-ms 300 \
        --shapes 32x64x56x56,8x256x28x28,4096x1024x1x1 --csv $OUT/\$v-small-r$r.csv > /dev/null 2>>$OUT/err.txt
      \$BIN sweep --ops batchnorm --layouts nhwc --directions backward --threads 1,2 --budget-ms 400 \
        --shapes 128x64x56x56 --paired-copy --csv $OUT/\$v-dram-r$r.csv > $OUT/\$v-dram-r$r.txt 2>>$OUT/err.txt
    done
    echo \"round $r end \$(uptime)\" >> $OUT/log.txt
  "
done
