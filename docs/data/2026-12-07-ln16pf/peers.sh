#!/bin/bash
# Peer run after the change: this branch's normbench (/tmp/nb-new-ln16pf) against oneDNN and PyTorch with the
# recycling allocator, LayerNorm backward in f32 (for the 16-bit ÷ our f32 column), bf16, f16, at the peer shapes, 1 and 2 threads, 3 rounds.
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16pf/peers.sh [NORMBENCH] [OUT]
set -e
D=docs/data/2026-12-07-ln16pf
NB=${1:-/tmp/nb-new-ln16pf}; OUT=${2:-$D/peers-new}
mkdir -p $OUT
{ date -u; uptime; lscpu | grep "Model name"; echo "normbench=$NB"; } > $OUT/machine-start.txt
python3 tools/peers.py --rounds 3 --budget-ms 200 --dtype f32,bf16,f16 --sets peer-layernorm --directions backward \
  --peers onednn,torch-recycling --normbench $NB --out $OUT
{ date -u; uptime; } > $OUT/machine-end.txt
