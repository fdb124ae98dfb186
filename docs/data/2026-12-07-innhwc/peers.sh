#!/bin/bash
# Run from the repository root under: flock -x /work/notes/machine.lock docs/data/2026-12-07-innhwc/peers.sh
# InstanceNorm backward only (both layouts, the peer set's two shapes), ours = this branch, then main's binary.
D=docs/data/2026-12-07-innhwc
uptime > $D/peers-uptime-start.txt
python3 tools/peers.py --sets peer-instancenorm --directions backward --rounds 3 --normbench /tmp/nb-new-innhwc \
    --peers onednn,torch-recycling --out $D/peers-new
python3 tools/peers.py --sets peer-instancenorm --directions backward --rounds 3 --normbench /tmp/nb-base-innhwc \
    --peers onednn,torch-recycling --out $D/peers-base
uptime > $D/peers-uptime-end.txt
