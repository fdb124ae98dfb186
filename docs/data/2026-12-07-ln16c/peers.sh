#!/bin/bash
# Peer run after the change: this branch's normbench against oneDNN, LayerNorm backward in f32 (for the ÷ our f32
# column) and bf16 (oneDNN has no f16 here), at the peer shapes, 1 and 2 threads, 3 rounds.
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16c/peers.sh [NORMBENCH] [OUT]
set -e
D=docs/data/2026-12-07-ln16c
NB=${1:-/tmp/nb-new3-ln16c}; OUT=${2:-$D/peers-new}
mkdir -p $OUT
{ date -u; uptime; lscpu | grep "Model name"; echo "normbench=$NB"; } > $OUT/machine-start.txt
python3 tools/peers.py --rounds 3 --budget-ms 200 --dtype f32,bf16 --sets peer-layernorm --directions backward \
  --peers onednn --normbench $NB --out $OUT
{ date -u; uptime; } > $OUT/machine-end.txt
