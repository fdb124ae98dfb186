#!/bin/bash
# usage: prof.sh BIN TAG sweep-flags...   (cpu-clock samples, 2 kHz, kernel symbols)
BIN=$1; TAG=$2; shift 2
OUT=/tmp/nhwcl2/prof; mkdir -p $OUT
perf record -e cpu-clock -F 2000 -q -o $OUT/$TAG.data -- $BIN sweep "$@" > $OUT/$TAG.txt 2>&1
perf report -q -n -i $OUT/$TAG.data --sort symbol --stdio 2>/dev/null > $OUT/$TAG.report
head -25 $OUT/$TAG.report | cut -c1-220
