#!/bin/bash
# Profile of the base (a69a4f6 normbench) bf16 LayerNorm forward at 1 thread. Run under flock -x.
NB=${NB:-/tmp/nb-base-ln16row}; TAG=${TAG:-base}
for S in 16384x768x1x1 8192x1024x1x1; do
  perf record -F 4999 -o /tmp/ln16row-$TAG-$S.data $NB sweep --ops layernorm --dtype bf16 --shapes $S --directions forward-training --threads 1 --budget-ms 3000 --csv /tmp/ln16row-$TAG-$S.csv >/dev/null 2>&1
  perf report -i /tmp/ln16row-$TAG-$S.data --stdio 2>/dev/null | grep -v "^#" | grep -v '^$' | head -14 > report-$TAG-$S.txt
  perf annotate -i /tmp/ln16row-$TAG-$S.data --stdio -s '$s11NormKernels13ChunkScheduleO07forEachC05units13valuesPerUnit5chunk9threading_ySi_S2iAA9T' 2>/dev/null > /dev/null
  cp /tmp/ln16row-$TAG-$S.csv ours-$TAG-$S.csv
done
