#!/usr/bin/env bash
# Row backward sweep 1 two rows side by side (new) against main (base), alternating rounds.
# flock -x /work/notes/machine.lock bash docs/data/2026-12-07-rowpair/ab.sh BASE NEW OUT ROUNDS
BASE=$1; NEW=$2; OUT=$3; R=${4:-5}
python3 tools/ab.py --base "$BASE" --new "$NEW" --rounds "$R" --out "$OUT" \
  --case "--ops layernorm --dtype f32,bf16,f16 --directions backward --shapes 16384x768x1x1,8192x1024x1x1,2048x4096x1x1,256x1024x1x1 --threads 1,2 --budget-ms 150" \
  --case "--ops rmsnorm,layernorm-residual --directions backward --shapes 8192x1024x1x1,256x1024x1x1 --threads 1 --budget-ms 150" \
  --case "--ops batchnorm --layouts nchw --directions forward-training --shapes 32x64x56x56 --threads 1 --budget-ms 150"
