#!/bin/bash
# ch16 A/B: base = main's normbench (/tmp/nb-ch16-base, built at 264d7f4), new = this branch's.
# Run locked: flock -x /work/notes/machine.lock bash docs/data/2026-12-07-ch16/measure.sh
set -e
BASE=${BASE:-/tmp/nb-ch16-base}
NEW=${NEW:-/tmp/nb-ch16-new}
OUT=${OUT:-docs/data/2026-12-07-ch16/ab}
ROUNDS=${ROUNDS:-6}
python3 tools/ab.py --base "$BASE" --new "$NEW" --rounds "$ROUNDS" --budget-ms 300 --out "$OUT" \
  --case "--ops batchnorm --layouts nchw --dtype bf16,f16,f32 --directions forward-training --shapes 128x64x56x56 --threads 1,2" \
  --case "--ops batchnorm --layouts nchw --dtype bf16 --directions forward-training --shapes 32x64x56x56,8x256x28x28 --threads 1,2" \
  --case "--ops layernorm --directions forward-training --shapes 8192x1024x1x1 --threads 1"
