for r in 1 2 3; do
for b in ${BASE:-/tmp/nb-main-2112e6d} ${NEW:-/work/wt-fwd1t/.build-release/release/normbench}; do
 for k in default never always; do
  if [ $k = default ]; then unset NORMKERNELS_STREAMING; else export NORMKERNELS_STREAMING=$k; fi
  t=$($b sweep --ops layernorm --directions backward --shapes 1792x1024x1x1 --threads 2 --budget-ms 200 --csv /tmp/lnc.csv >/dev/null 2>&1; tail -n 1 /tmp/lnc.csv | cut -d, -f11)
  echo "r$r $(basename $(dirname $(dirname $b)))$(basename $b) $k $t"
 done
done; done
