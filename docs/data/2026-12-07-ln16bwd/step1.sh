#!/bin/bash
# Step 1 (before any change): main's normbench (b80cff7, copied to /tmp/nb-base-ln16bwd) against oneDNN and
# PyTorch with the recycling allocator, LayerNorm backward at the peer shapes, f32/bf16/f16, 1 and 2 threads,
# 3 alternating rounds (peers.py runs ours then each peer per round).
# Run from the worktree root: flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16bwd/step1.sh
set -e
D=docs/data/2026-12-07-ln16bwd
{ date -u; uptime; lscpu | grep "Model name"; } > $D/step1-machine-start.txt
python3 tools/peers.py --rounds 3 --budget-ms 200 --dtype f32,bf16,f16 --sets peer-layernorm --directions backward \
  --peers onednn,torch-recycling --normbench /tmp/nb-base-ln16bwd --out $D/step1-peers
{ date -u; uptime; } > $D/step1-machine-end.txt
