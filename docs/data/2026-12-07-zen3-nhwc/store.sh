#!/usr/bin/env bash
# Zen 3 (no AVX-512): the NHWC backwards behind PyTorch in the peer run; store policy, one binary.
# flock -x /work/notes/machine.lock bash docs/data/2026-12-07-zen3-nhwc/store.sh BIN OUT ROUNDS
BIN=$1; OUT=$2; R=${3:-6}
python3 tools/ab.py --base "$BIN" --new "$BIN" --base-env NORMKERNELS_STREAMING=never --new-env NORMKERNELS_STREAMING=always \
  --rounds "$R" --out "$OUT" \
  --case "--ops batchnorm,instancenorm --layouts nhwc --directions backward --shapes 32x64x56x56 --threads 1,2 --budget-ms 300 --paired-copy" \
  --case "--ops instancenorm --layouts nhwc --directions backward --shapes 1x64x256x256 --threads 2 --budget-ms 300 --paired-copy"
