#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 3 1 0 0 40      # sums only
./mb 11 1 0 0 40      # sums twice per image over image 0 (1.6 MB)
./mb 12 1 0 0 40      # sums 4x over half image 0 (0.8 MB)
done; done
