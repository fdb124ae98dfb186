#!/bin/bash
# The peer run of this folder (run from the worktree root, under the exclusive timing lock):
# Float16 LayerNorm against PyTorch with a recycling allocator (oneDNN 2.6 has no f16 normalization).
set -e
D=docs/data/2026-12-07-ln16h
{ date -u; uptime; } > $D/peers-machine-start.txt
python3 tools/peers.py --rounds 3 --dtype f16 --sets peer-layernorm --peers torch-recycling --normbench "$PWD/.build-release/release/normbench" --out $D/peers-f16
{ date -u; uptime; } > $D/peers-machine-end.txt
# The base (main's 1a2e0a5 normbench) through the same command right after, forward only (time).
python3 tools/peers.py --rounds 3 --dtype f16 --sets peer-layernorm --peers torch-recycling --directions forward-training --normbench /tmp/nb-base-ln16h --out $D/peers-f16-base
{ date -u; uptime; } > $D/peers-machine-end-base.txt
