#!/bin/bash
uptime
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
for mb in 0 8 64; do
  if [ $mb -gt 0 ]; then taskset -c 1 ./noise $mb & NP=$!; sleep 0.3; fi
  echo "== noise ${mb} MB"
  taskset -c 0 /tmp/nb-base-innhwc sweep --ops instancenorm --layouts nhwc,nchw --shapes 32x64x56x56 --directions backward --threads 1 --budget-ms 1000 | grep "^instancenorm"
  taskset -c 0 /work/torchvenv/bin/python torchcase.py 1 1.5 2>/dev/null
  if [ $mb -gt 0 ]; then kill $NP; wait $NP 2>/dev/null; fi
done
uptime
