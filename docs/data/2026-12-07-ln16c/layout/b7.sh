#!/bin/bash
uptime
for r in 1 2; do for k in 2 1; do for c in "16 0 16" "16 0 1040" "16 0 2064" "16 2048 16" "16 1024 16" "16 16 16"; do echo -n "k$k "; ./t2 16384 768 $k $c | tail -1 | awk '{print $2,$4,$6,$11,$13}'; done; done; done
uptime
