#!/bin/bash
# The peer runs of this folder (run from the worktree root, each under the exclusive timing lock).
set -e
D=docs/data/2026-12-06-ln16
flock -x /work/notes/machine.lock python3 tools/peers.py --rounds 3 --dtype bf16 --sets peer-layernorm --peers onednn,torch-recycling --normbench "$PWD/.build-release/release/normbench" --out $D/peers-bf16
flock -x /work/notes/machine.lock python3 tools/peers.py --rounds 2 --dtype f16 --sets peer-layernorm --peers torch-recycling --normbench "$PWD/.build-release/release/normbench" --out $D/peers-f16
