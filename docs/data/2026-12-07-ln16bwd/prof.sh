#!/bin/bash
# perf profile of one case (Float16 LayerNorm backward [8192,1024], 1 thread) of a normbench binary.
# Usage (worktree root): flock -x /work/notes/machine.lock docs/data/2026-12-07-ln16bwd/prof.sh BINARY TAG [DTYPE] [SHAPE]
set -e
BIN=${1:?binary}; TAG=${2:?tag}; DT=${3:-f16}; SHAPE=${4:-8192x1024x1x1}
D=docs/data/2026-12-07-ln16bwd/profile; mkdir -p $D
ARGS="sweep --ops layernorm --dtype $DT --shapes $SHAPE --directions backward --threads 1 --budget-ms 3000"
{ date -u; uptime; } > $D/$TAG-machine.txt
perf stat -e cycles:u,instructions:u,task-clock -o $D/$TAG-stat.txt $BIN $ARGS > $D/$TAG-sweep.txt
perf record -q -e cycles:u -o /tmp/ln16bwd-$TAG.data $BIN $ARGS > /dev/null 2>&1
perf report -i /tmp/ln16bwd-$TAG.data --stdio --no-children --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25 > $D/$TAG-report.txt
SYM=$(head -1 $D/$TAG-report.txt | sed 's/.*\] //')
perf annotate -i /tmp/ln16bwd-$TAG.data --stdio -s "$SYM" 2>/dev/null > /tmp/ln16bwd-$TAG-annotate.txt || true
# The hottest instructions of the top symbol.
grep -E '^\s+[0-9]+\.[0-9]+ +:' /tmp/ln16bwd-$TAG-annotate.txt | sort -rn | head -40 > $D/$TAG-hot.txt || true
cp /tmp/ln16bwd-$TAG-annotate.txt $D/$TAG-annotate.txt
{ date -u; uptime; } >> $D/$TAG-machine.txt
