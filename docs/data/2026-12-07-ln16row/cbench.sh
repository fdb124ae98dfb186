#!/bin/bash
# alternate v1 (one C call per item, finish between loops) and v2 (finish staged inside the next loop)
cd /tmp/ln16row-c; uptime
for r in 1 2 3 4; do
 for v in v1 v2; do ./$v 16384 768 168 15 $v o-$v-768.bin; ./$v 8192 1024 128 15 $v o-$v-1024.bin; ./$v 2048 4096 32 15 $v o-$v-4096.bin; done
done
uptime
