#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1 2; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 3 1 0 0 40      # sums only
./mb 9 1 0 0 40      # sums twice per image
./mb 0 1 0 0 40      # current
./mb 10 1 0 32 40 3136
./mb 10 1 0 16 40 3136
./mb 10 1 0 32 40 512
done; done
