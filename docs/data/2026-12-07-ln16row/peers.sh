#!/bin/bash
# The peer run of this folder (run from the worktree root; it takes the exclusive timing lock itself).
set -e
D=docs/data/2026-12-07-ln16row
{ date -u; uptime; } > /tmp/ln16row-peers-start.txt
flock -x /work/notes/machine.lock python3 tools/peers.py --rounds 3 --dtype bf16 --sets peer-layernorm --peers onednn,torch-recycling --normbench "$PWD/.build-release/release/normbench" --out $D/peers-bf16
# The base (main's a69a4f6 normbench) in the same minutes, for a like-for-like peer ratio:
flock -x /work/notes/machine.lock python3 tools/peers.py --rounds 3 --dtype bf16 --sets peer-layernorm --peers onednn,torch-recycling --normbench /tmp/nb-base-ln16row --out $D/peers-bf16-base
