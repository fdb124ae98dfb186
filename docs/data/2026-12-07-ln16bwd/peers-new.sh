#!/bin/bash
# Step 4's peer run: this branch's normbench (copied to /tmp/nb-new-ln16bwd) against oneDNN and PyTorch with the recycling allocator, 16-bit
# LayerNorm backward, 3 rounds. Run from the worktree root: flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16bwd/peers-new.sh
set -e
D=docs/data/2026-12-07-ln16bwd
{ date -u; uptime; } > $D/peers-new-machine-start.txt
python3 tools/peers.py --rounds 3 --budget-ms 200 --dtype bf16,f16 --sets peer-layernorm --directions backward \
  --peers onednn,torch-recycling --normbench /tmp/nb-new-ln16bwd --out $D/peers-new
{ date -u; uptime; } > $D/peers-new-machine-end.txt
