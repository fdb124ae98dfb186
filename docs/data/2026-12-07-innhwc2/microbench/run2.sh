#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1 2; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 2 1 0 0 40      # NT triad single pass (bound)
./mb 0 1 0 0 40      # current
for g in 8 32 128 512; do ./mb 5 1 0 $g 40; done
done; done
