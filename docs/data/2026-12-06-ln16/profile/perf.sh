cd /work/wt-ln16  # base binary: f85e6bc (the worktree before 822b037)
NB=.build-release/release/normbench
echo OURS; perf stat -e cycles,instructions,cache-misses $NB sweep --ops layernorm --dtype bf16 --shapes 16384x768x1x1 --directions forward-training --threads 1 --budget-ms 2000 --csv /tmp/ln16-p1.csv 2>&1 | grep -E "cycles|instructions|elapsed|ms" | head; 
echo ONEDNN; perf stat -e cycles,instructions,cache-misses /work/main/.build-onednn/onednn_bench --csv /tmp/ln16-o1.csv --ops layernorm --directions forward-training --shapes 16384x768x1x1 --threads 1 --dtype bf16 --budget-ms 2000 2>&1 | grep -E "cycles|instructions|elapsed" ; cat /tmp/ln16-o1.csv
perf record -o /tmp/ln16-perf.data $NB sweep --ops layernorm --dtype bf16 --shapes 16384x768x1x1 --directions forward-training --threads 1 --budget-ms 2000 >/dev/null 2>&1
perf report -i /tmp/ln16-perf.data --stdio 2>/dev/null | grep -v "^#" | head -25
