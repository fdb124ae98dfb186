#!/usr/bin/env bash
# normbench --placement: staggered (base) against pages (new: every tensor of a
# case page-aligned, the 4K-aliasing worst case), one binary, alternating rounds.
# Run from the repository root: flock -x /work/notes/machine.lock bash docs/data/2026-12-07-placement/survey.sh BIN OUT ROUNDS
BIN=${1:-.build-release/release/normbench}; OUT=${2:-docs/data/2026-12-07-placement/survey}; R=${3:-4}
python3 tools/ab.py --base "$BIN" --new "$BIN" --base-env NORMBENCH_PLACEMENT=staggered --new-env NORMBENCH_PLACEMENT=pages \
  --rounds "$R" --out "$OUT" \
  --case "--ops batchnorm --layouts nchw,nhwc --directions forward-training,forward-inference,backward --shapes 32x64x56x56 --threads 1,2 --budget-ms 200" \
  --case "--ops layernorm,rmsnorm --directions forward-training,backward --shapes 8192x1024x1x1,16384x768x1x1 --threads 1,2 --budget-ms 200" \
  --case "--ops groupnorm --groups 32 --layouts nchw,nhwc --directions forward-training,backward --shapes 2x320x64x64 --threads 1,2 --budget-ms 200" \
  --case "--ops instancenorm --layouts nchw,nhwc --directions forward-training,backward --shapes 32x64x56x56 --threads 1,2 --budget-ms 200" \
  --case "--ops layernorm --dtype bf16,f16 --directions forward-training,backward --shapes 16384x768x1x1,8192x1024x1x1 --threads 1,2 --budget-ms 200" \
  --case "--ops batchnorm --dtype bf16 --layouts nchw,nhwc --directions forward-training,backward --shapes 32x64x56x56 --threads 1,2 --budget-ms 200"
