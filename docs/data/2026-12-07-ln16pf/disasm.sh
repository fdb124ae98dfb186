#!/bin/bash
# Disassembly check: the row backward's closure (ShortRowsBackward.rowBlock, the withScratch closure that holds
# sweeps 1 and 2) in each specialization (Float32 / BFloat16 / Float16 × Cached / Streaming store) of two normbench
# binaries. Prints per function: instructions, prefetcht1, stack-memory operands ((%rbp)/(%rsp)), and whether
# the Float32 bodies are the same instruction sequence once addresses are stripped.
# Usage: disasm.sh BASE NEW OUTDIR
set -e
BASE=$1; NEW=$2; OUT=$3; mkdir -p $OUT
PRE='$s11NormKernels17ShortRowsBackwardO8rowBlock33_D5C0193D596AC07D75C09824CB9118C8LLyySPyxG_AFSpyxGSPySfGSgS3iSaySdGSgAJSpyAA12GradientSumsVGSgSpySfGq_mySi_SitXEySi_SitXEtAA0A7ElementRzAA11VectorStoreR_r0_lFZySrys5SIMD8VySfGGXEfU_'
printf "%-8s %-26s %6s %6s %6s\n" binary specialization insns pf_t1 stack
for tag in base new; do
  BIN=$BASE; [ $tag = new ] && BIN=$NEW
  for t in Sf_ AA8BFloat16V_ s7Float16V_; do for s in AA06CachedT0OTt17g5 AA09StreamingT0OTt17g5; do
    sym="$PRE$t$s"; name=$(echo ${t}${s} | sed 's/AA8//;s/s7//;s/V_/_/;s/_$//;s/AA06//;s/AA09//;s/T0OTt17g5//')
    objdump -d --no-show-raw-insn --disassemble="$sym" $BIN | grep -P '^\s+[0-9a-f]+:\t' > $OUT/$tag-$name.s
    # strip addresses (and jump targets) for the diff
    sed -E 's/^\s+[0-9a-f]+:\t//; s/[0-9a-f]+ <[^>]*>/ADDR/; s/#.*//' $OUT/$tag-$name.s > $OUT/$tag-$name.norm
    printf "%-8s %-26s %6d %6d %6d\n" $tag $name $(wc -l < $OUT/$tag-$name.s) $(grep -c prefetcht1 $OUT/$tag-$name.s || true) \
      $(grep -cE '\((%rbp|%rsp)' $OUT/$tag-$name.s || true)
  done; done
done
for n in Sf_Cached Sf_Streaming; do
  if cmp -s $OUT/base-$n.norm $OUT/new-$n.norm; then echo "$n: base and new identical (addresses stripped)"
  else echo "$n: differ:"; diff $OUT/base-$n.norm $OUT/new-$n.norm | head -40; fi
done
