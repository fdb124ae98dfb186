#!/bin/bash
# Second peer check (forward only): new, base, new again in the same minutes, to see PyTorch's own spread.
set -e
D=docs/data/2026-12-07-ln16h
{ date -u; uptime; } > $D/peers2-machine-start.txt
for tag in new-a base new-b; do
  NB="$PWD/.build-release/release/normbench"; [ $tag = base ] && NB=/tmp/nb-base-ln16h
  python3 tools/peers.py --rounds 3 --dtype f16 --sets peer-layernorm --peers torch-recycling --directions forward-training --normbench "$NB" --out $D/peers2-f16-$tag
done
{ date -u; uptime; } > $D/peers2-machine-end.txt
