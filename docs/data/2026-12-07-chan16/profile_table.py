#!/usr/bin/env python3
"""Table of prof*/bn-*.txt (perf report --sort sym, top 25) from profile.sh: the share of the kernel's samples
in the statistics / gradient-sums pass and in the output (y or dx) pass, and cycles per element of the whole
kernel at the timed median (csv), 2.6 GHz nominal (lscpu: 2596 MHz; the real clock may be higher)."""
import csv, glob, os, re, sys
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'prof')
elements = 128 * 64 * 56 * 56
def kind(sym):
    if 'welfordLanes32' in sym or 'BlockMomentsO16segmentedFloat32' in sym or 'nk_welford512_lanes32' in sym: return 'stats'
    if 'BlockGradientsO16segmentedFloat32' in sym or 'nk_welford512_gradient_sums' in sym: return 'stats'
    if 'ApplyO6affine' in sym or 'nk_bf16_hw_affine' in sym or 'applyCore' in sym or 'BlockGradientsO5apply' in sym \
       or 'nk_bf16_hw_gradient' in sym: return 'out'
    return None
print('| dtype | direction | t | kernel ms | stats/sums pass % | output pass % | stats : output | cycles/element (2.6 GHz) |')
print('|---|---|---|---|---|---|---|---|')
for t in [1, 2]:
  for dr in ['forward-training', 'backward']:
    for dt in ['f32', 'bf16', 'f16']:
        f = os.path.join(d, f'bn-{dt}-{dr}-t{t}.txt')
        if not os.path.exists(f): continue
        share = {'stats': 0.0, 'out': 0.0}
        for line in open(f):
            m = re.match(r'\s*([\d.]+)%\s+\[\.\]\s+(\S+)', line)
            if m and kind(m.group(2)): share[kind(m.group(2))] += float(m.group(1))
        ms = float(list(csv.DictReader(open(f[:-4] + '.csv')))[0]['median_ms'])
        tot = share['stats'] + share['out']
        print(f'| {dt} | {dr} | {t} | {ms:.2f} | {share["stats"]:.1f} | {share["out"]:.1f} | '
              f'{share["stats"]/tot:.2f} : {share["out"]/tot:.2f} | {ms*1e-3*2.6e9*t/elements:.2f} |')
