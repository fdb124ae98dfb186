#!/bin/bash
cd /tmp/innhwc/mb
export OMP_WAIT_POLICY=passive
for t in 1 2; do export OMP_NUM_THREADS=$t
for rr in 1 2; do
./mb 0 1 0 0 40      # current
./mb 13 1 0 0 40 2048
./mb 13 1 0 0 40 512
./mb 13 1 0 0 40 128
./mb 13 1 0 0 40 32
./mb 13 1 0 0 40 8
done; done
