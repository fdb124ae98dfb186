#!/usr/bin/env bash
# Step 1: DRAM set at main (f85e6bc), f32/bf16/f16 in the same run, 2 threads and 1, ROUNDS rounds.
# Run as: flock -x /work/notes/machine.lock bash dram-main.sh
BIN=${BIN:-/tmp/nb-base-dram16}
OUT=${OUT:-/work/wt-dram16/docs/data/2026-12-06-dram16/main}
mkdir -p $OUT
lscpu | grep 'Model name' >> $OUT/log.txt
for r in $(seq 1 ${ROUNDS:-2}); do
  for t in ${THREADS:-2 1}; do
   echo "round $r threads $t $(uptime)" >> $OUT/log.txt
   $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions forward-training,forward-inference,backward --paired-copy \
     --ops batchnorm --shapes 128x64x56x56 --csv $OUT/bn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
   $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions forward-training,backward --paired-copy \
     --ops layernorm --shapes 32768x1024x1x1 --csv $OUT/ln-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
   $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions forward-training,backward --paired-copy \
     --ops groupnorm --groups 32 --shapes 64x128x56x56 --csv $OUT/gn-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
   $BIN sweep --threads $t --budget-ms 300 --dtype f32,bf16,f16 --directions forward-training,backward --paired-copy \
     --ops instancenorm --shapes 32x64x128x128 --csv $OUT/in-t$t-r$r.csv > /dev/null 2>>$OUT/err.txt
  done
done
echo "end $(uptime)" >> $OUT/log.txt
