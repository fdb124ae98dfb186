#!/usr/bin/env bash
# Base (main's normbench at 2112e6d) against new (this branch) in alternating rounds, same cases.
#   flock -x /work/notes/machine.lock bash docs/data/2026-12-07-smallmap/ab.sh OUT ROUNDS
set -euo pipefail
OUT=${1:-docs/data/2026-12-07-smallmap/ab}
ROUNDS=${2:-6}
BASE=${BASE:-/tmp/nb-base-smallmap}
NEW=${NEW:-/tmp/smallmap/nb-new}
mkdir -p "$OUT"
{ date -u; uptime; } > "$OUT/load.txt"
run() {  # binary tag round
    "$1" sweep --ops batchnorm --layouts nchw --directions forward-training,backward --threads 1,2 --budget-ms 120 \
        --shapes 256x512x2x2,1024x128x2x2,128x512x1x3,64x1024x1x6,4096x512x2x2,128x256x4x4,256x256x3x3 \
        --csv "$OUT/$2-bn-r$3.csv" > /dev/null
    "$1" sweep --ops layernorm --directions forward-training,backward --threads 1,2 --budget-ms 120 \
        --shapes 8192x1024x1x1 --csv "$OUT/$2-ctl-r$3.csv" > /dev/null
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then run "$BASE" base "$r"; run "$NEW" new "$r"
    else run "$NEW" new "$r"; run "$BASE" base "$r"; fi
done
{ date -u; uptime; } >> "$OUT/load.txt"
