#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1 2; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 2 1 0 0 40      # NT triad single pass (bound)
./mb 3 1 0 0 40      # sums only
./mb 4 1 0 0 40      # apply only from DRAM
./mb 0 1 0 0 40      # current
./mb 0 0 0 0 40      # current, cached stores
./mb 1 1 1 4 40      # prefetch next image T1 4 lines per row = exactly one image
./mb 1 1 0 4 40
./mb 1 1 2 4 40
done; done
