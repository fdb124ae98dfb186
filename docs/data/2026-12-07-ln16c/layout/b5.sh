#!/bin/bash
uptime
for k in 2 1; do for ao in $(seq 0 128 4032); do echo -n "k$k "; ./t2 512 768 $k 0 $ao 0 | tail -1 | awk '{print $4, $11, $13}'; done; done
uptime
