#!/bin/bash
# On-CPU samples (cpu-clock, 2 kHz) of the kernel symbols for 20 timed repetitions.
OUT=/tmp/rows16-ab/prof2; mkdir -p $OUT
DIR=${DIR:-backward}; OPS=${OPS:-layernorm}; T=${T:-1}
for b in ${BINS:-base new}; do
  for dt in ${DTS:-f32 bf16 f16}; do
    tag=$b-$OPS-$DIR-$dt-t$T${SUFFIX:-}
    perf record -e cpu-clock -F 2000 -q -o $OUT/$tag.data -- /tmp/nb-$b-rows16 sweep --ops $OPS --directions $DIR --dtype $dt --shapes ${SHAPE:-32768x1024x1x1} --threads $T --budget-ms 1 --min-reps 20 > $OUT/$tag.txt 2>&1
    perf report -q -n -i $OUT/$tag.data --sort symbol --stdio 2>/dev/null > $OUT/$tag.report
    python3 /tmp/rows16-ab/ksamples.py $OUT/$tag.report

  done
done
