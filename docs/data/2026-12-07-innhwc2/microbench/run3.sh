#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1 2; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 2 1 0 0 40      # NT triad single pass (bound)
./mb 3 1 0 0 40      # sums only
./mb 6 1 0 0 40      # NT write only 25.7 MB
./mb 7 1 0 0 40      # apply from cache (image 0 data), NT dx
./mb 7 0 0 0 40      # apply from cache, cached dx
./mb 8 0 0 0 40      # apply all in cache (dx image 0 too)
./mb 0 1 0 0 40      # current
done; done
